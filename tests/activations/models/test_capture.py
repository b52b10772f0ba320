"""MlpCapture reads the model's own MLP modules and ends the pass after the last wanted layer."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from activations.models.adapters import find_mlp_sites
from activations.models.capture import MlpCapture
from registry.vocabulary import IN_HOOK


def test_pass_stops_after_the_last_wanted_layer_with_the_values_of_a_full_pass(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models["olmo"]).eval()
    sites = find_mlp_sites(model)
    ids = torch.tensor([[2, 5, 9, 11, 4]])
    full: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        with MlpCapture(sites, lambda layer, t: full.update({layer: t[IN_HOOK].clone()})):
            model.base_model(input_ids=ids)
    assert sorted(full) == [0, 1, 2]

    seen: dict[int, torch.Tensor] = {}
    ran_after: list[int] = []
    last = sites[-1].in_module.register_forward_hook(lambda *_: ran_after.append(1))
    try:
        with (
            torch.inference_mode(),
            MlpCapture(sites[:2], lambda layer, t: seen.update({layer: t[IN_HOOK].clone()})),
        ):
            model.base_model(input_ids=ids)
    finally:
        last.remove()
    assert sorted(seen) == [0, 1] and not ran_after  # layer 2 never ran
    for layer in seen:
        torch.testing.assert_close(seen[layer], full[layer], rtol=0, atol=0)
