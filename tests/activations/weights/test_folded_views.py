"""Weight views read what the neuron reads: gate and in through the pre-MLP norm's scale (as
TransformerLens's fold_ln gives them to the IO classes' authors), raw cosines kept; and one
neuron's view, computed alone, is the row the model-wide table holds, bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from activations.models.adapters import find_mlp_sites
from activations.weights.compute import Vocabulary, neuron_views, weight_views
from activations.weights.store import WeightTable
from tests.tiny import make_tiny_model

# the authors' rule (sjgerstner/RW_functionalities, src/weight_analysis_utils/utils.py):
# COMBO_TO_NAME keyed by (approx cos(in,out), |approx cos(gate,out)|, typical)
THEIR_CLASSES = {
    (1, 1, 1): "strengthening", (1, 1, 0): "atypical strengthening",
    (1, 0, 1): "conditional strengthening", (1, 0, 0): "atypical conditional strengthening",
    (0, 1, 1): "proportional change", (0, 1, 0): "atypical proportional change",
    (0, 0, 1): "orthogonal output", (-1, 1, 1): "weakening", (-1, 1, 0): "atypical weakening",
    (-1, 0, 1): "conditional weakening", (-1, 0, 0): "atypical conditional weakening",
}  # fmt: skip


def their_cos(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """utils.cos: each vector over its norm, then their dot, per neuron."""
    return ((v1 / v1.norm(dim=-1, keepdim=True)) * (v2 / v2.norm(dim=-1, keepdim=True))).sum(-1)


def their_approx(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < -0.5, -1, torch.where(x > 0.5, 1, 0))


def their_classes(gate, in_, out) -> list[str]:
    """compute_category on [neuron, d] rows, named by COMBO_TO_NAME."""
    linout = their_approx(their_cos(in_, out))
    gateout = their_approx(their_cos(gate, out))
    gatelin = their_approx(their_cos(gate, in_))
    typical = torch.where((linout == 0) & (gateout == 0), 1, (gatelin == linout * gateout).int())
    keys = zip(linout.tolist(), gateout.abs().tolist(), typical.tolist(), strict=True)
    return [THEIR_CLASSES[k] for k in keys]


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """A tiny Llama whose pre-MLP norms have scales far from one (a trained model's do), with
    neurons whose gate and in are made to lie near one another in raw space."""
    folder = make_tiny_model("llama", tmp_path_factory.mktemp("scaled") / "model", seed=11)
    model = AutoModelForCausalLM.from_pretrained(folder)
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in model.model.layers:
            d = layer.post_attention_layernorm.weight.shape[0]
            scale = torch.exp(2.0 * torch.randn(d))  # some dimensions count far more
            layer.post_attention_layernorm.weight.copy_(scale)
            mlp = layer.mlp
            noise = 0.6 * torch.randn_like(mlp.up_proj.weight)
            mlp.up_proj.weight.copy_(mlp.gate_proj.weight + noise * mlp.gate_proj.weight.std())
            mlp.down_proj.weight.copy_(mlp.gate_proj.weight.T + 0.5 * torch.randn(d, 24) * 0.1)
        model.model.norm.weight.copy_(torch.rand(model.config.hidden_size) + 0.5)
    return model


def test_classes_are_the_authors_rule_on_folded_weights(scaled):
    sites = find_mlp_sites(scaled)
    table = WeightTable(weight_views(scaled, sites))
    assert table.metadata["folded"]
    differs = 0
    for site, layer in zip(sites, scaled.model.layers, strict=True):
        scale = layer.post_attention_layernorm.weight.detach()
        gate, in_ = (w.detach() for w in site.gate_in_weights())
        out = site.out_weights().detach()
        folded = their_classes(gate * scale, in_ * scale, out)
        raw = their_classes(gate, in_, out)
        for n in range(out.shape[0]):
            found = table.neuron(site.layer, n)
            assert (found["io_class"], found["raw_io_class"]) == (folded[n], raw[n]), n
            want = their_cos(gate[n] * scale, out[n]).item(), their_cos(gate[n], out[n]).item()
            if np.isfinite(want).all():  # a zero row (neurons 0 and 1 of tiny models): 0 here
                assert (found["cos_gate_out"], found["raw_cos_gate_out"]) == pytest.approx(want)
            differs += folded[n] != raw[n]
    assert differs, "folding changes some class here: the test can tell the two apart"


def test_input_token_lists_go_through_the_norms_scale(scaled):
    sites = find_mlp_sites(scaled)
    table = WeightTable(weight_views(scaled, sites, top_k=5))
    embed = scaled.model.embed_tokens.weight.detach().double().numpy()
    for site, layer in zip(sites, scaled.model.layers, strict=True):
        scale = layer.post_attention_layernorm.weight.detach().double().numpy()
        gate, in_ = (w.detach().double().numpy() for w in site.gate_in_weights())
        for n in (2, 7, 23):
            found = table.neuron(site.layer, n)
            for name, row in (("gate", gate[n]), ("in", in_[n])):
                order = np.argsort(-(embed @ (scale * row)))
                assert found[f"{name}_top_ids"] == order[:5].tolist()
                assert found[f"{name}_bottom_ids"] == order[::-1][:5].tolist()


@pytest.mark.parametrize("tie", [True, False])
def test_one_neurons_view_is_the_tables_row_bit_for_bit(scaled, tmp_path, tie):
    model = copy.deepcopy(scaled)  # untied: its in and out lists come from two matrices
    if tie:  # one product per chunk, [written; gate; in] against the one matrix
        model.lm_head.weight = model.model.embed_tokens.weight
    sites = find_mlp_sites(model)
    vocabulary = Vocabulary.of(model, sites)
    assert (vocabulary.embed is vocabulary.unembed) == tie
    table = WeightTable(weight_views(model, sites, chunk=8, vocabulary=vocabulary))
    for site in sites:
        for n in range(site.n_neurons):
            alone = neuron_views(site, vocabulary, n, refactored=False)
            row = table.columns
            got = {name: alone[name][0].as_py() for name in alone.column_names}
            want = {name: row[name][table.row(site.layer, n)].tolist() for name in got}
            assert got.keys() == set(table.columns)
            assert _same(got, want), (site.layer, n)


def _same(a: dict, b: dict) -> bool:
    """Equal, NaN (a plain MLP's missing gate) equal to NaN."""
    return all(
        a[k] == b[k] or (isinstance(a[k], float) and a[k] != a[k] and b[k] != b[k]) for k in a
    )
