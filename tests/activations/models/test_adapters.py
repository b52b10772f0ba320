"""Model adapters: a new MLP family is one entry of ADAPTERS, and its neurons are read right."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activations.models import adapters
from activations.models.adapters import MlpAdapter, find_mlp_sites, glu_refactor_signs
from activations.models.capture import MlpCapture, site_values
from registry.vocabulary import GLU_HOOKS, HOOK_POST, HOOK_PRE, HOOK_PRE_LINEAR, SWISH


class ToyMlp(nn.Module):
    """A GLU laid out under names no built-in adapter knows."""

    def __init__(self, width: int = 8, neurons: int = 6) -> None:
        super().__init__()
        self.w_gate = nn.Linear(width, neurons, bias=False)
        self.w_in = nn.Linear(width, neurons, bias=False)
        self.w_out = nn.Linear(neurons, width, bias=False)
        self.nonlin = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(self.nonlin(self.w_gate(x)) * self.w_in(x))


class ToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ToyMlp(), ToyMlp()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


TOY = MlpAdapter(name="toy", gate="w_gate", in_="w_in", out="w_out", act="nonlin")


def test_an_unknown_layout_names_the_layouts_it_knows():
    with pytest.raises(ValueError, match="gate_proj/up_proj/down_proj|ADAPTERS") as info:
        find_mlp_sites(ToyModel())
    assert "gate_up_proj" in str(info.value)  # the fused layout is listed too


def test_a_layout_is_registered_by_its_module_names(monkeypatch):
    monkeypatch.setattr(adapters, "ADAPTERS", list(adapters.ADAPTERS))
    with pytest.raises(ValueError):
        find_mlp_sites(ToyModel())
    adapters.register_mlp_layout(TOY)
    assert adapters.ADAPTERS[0] is TOY and len(find_mlp_sites(ToyModel())) == 2
    adapters.register_mlp_layout(MlpAdapter(name="toy", in_="w_in", out="w_out", act="nonlin"))
    assert [a.name for a in adapters.ADAPTERS].count("toy") == 1  # replaced, not added
    assert not find_mlp_sites(ToyModel())[0].is_glu


def test_a_new_family_is_one_adapter(monkeypatch):
    monkeypatch.setattr(adapters, "ADAPTERS", [*adapters.ADAPTERS, TOY])
    torch.manual_seed(0)
    model = ToyModel().eval()
    sites = find_mlp_sites(model)
    assert [s.layer for s in sites] == [0, 1] and all(s.is_glu for s in sites)
    assert sites[0].n_neurons == 6

    x = torch.randn(1, 5, 8)
    seen: dict[int, dict] = {}
    with (
        torch.inference_mode(),
        MlpCapture(
            sites, lambda layer, captured: seen.update({layer: site_values(captured, sites[0].act)})
        ),
    ):
        model(x)
    # by hand: layer 0 sees x, layer 1 sees x + layer0(x)
    with torch.inference_mode():
        inputs = [x, x + model.layers[0](x)]
        for layer, mlp in enumerate(model.layers):
            gate, in_ = mlp.w_gate(inputs[layer]), mlp.w_in(inputs[layer])
            expected = {
                HOOK_PRE: gate,
                HOOK_PRE_LINEAR: in_,
                SWISH: mlp.nonlin(gate),
                HOOK_POST: mlp.nonlin(gate) * in_,
            }
            for hook in GLU_HOOKS:
                torch.testing.assert_close(seen[layer][hook], expected[hook], rtol=0, atol=0)


def test_fused_gate_and_in_are_the_two_halves(tiny_models):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["phi3"]).eval()
    sites = find_mlp_sites(model)
    assert sites[0].adapter.name == "fused-gated" and sites[0].n_neurons == 20
    gate, in_ = sites[0].gate_in_weights()
    fused = sites[0].mlp.gate_up_proj.weight
    assert torch.equal(gate, fused[:20]) and torch.equal(in_, fused[20:])
    signs = glu_refactor_signs(sites[0])
    expected = torch.where((fused[:20] * fused[20:]).sum(dim=1) < 0, -1.0, 1.0)
    assert torch.equal(signs, expected)


def test_the_adapter_is_chosen_by_the_architectures_name(tiny_models, monkeypatch):
    """The table names each family's layout: a model of a registered architecture is read by
    its adapter alone, even where another layout's module names also fit."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        llama = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_models["llama"]))
    assert adapters.adapter_for(llama).name == "gated"
    assert {s.adapter.name for s in find_mlp_sites(llama)} == {"gated"}

    monkeypatch.setattr(adapters, "ADAPTERS", list(adapters.ADAPTERS))
    monkeypatch.setattr(adapters, "ARCHITECTURES", dict(adapters.ARCHITECTURES))
    adapters.register_mlp_layout(TOY, architectures=("ToyModel",))
    assert adapters.adapter_for(ToyModel()) is TOY
    assert [s.adapter for s in find_mlp_sites(ToyModel())] == [TOY, TOY]


def test_a_mixture_of_experts_is_refused_by_name_and_by_config(monkeypatch):
    from transformers import AutoModelForCausalLM, MixtralConfig

    config = MixtralConfig(hidden_size=16, intermediate_size=8, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=2, num_local_experts=4,
                           vocab_size=32)  # fmt: skip
    with torch.device("meta"):
        mixtral = AutoModelForCausalLM.from_config(config)
    with pytest.raises(ValueError) as info:
        find_mlp_sites(mixtral)
    message = str(info.value)
    assert "MixtralForCausalLM is a mixture-of-experts model (4 experts per layer)" in message
    assert "LlamaForCausalLM" in message  # what is supported

    class Experts(nn.Module):  # an unnamed MoE block: each expert a GLU of known names
        def __init__(self) -> None:
            super().__init__()
            self.experts = nn.ModuleList([ToyMlp(), ToyMlp(), ToyMlp()])

    class UnnamedMoe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = type("Config", (), {"num_hidden_layers": 2, "architectures": None})()
            self.layers = nn.ModuleList([Experts(), Experts()])

    monkeypatch.setattr(adapters, "ADAPTERS", [*adapters.ADAPTERS, TOY])  # by module names
    with pytest.raises(ValueError, match="6 modules in the toy MLP layout for 2 layers"):
        find_mlp_sites(UnnamedMoe())  # three experts per layer are not three layers
    moe_config = type("Config", (), {"num_experts": 8, "num_hidden_layers": 2})()
    model = UnnamedMoe()
    model.config = moe_config
    with pytest.raises(ValueError, match="UnnamedMoe is a mixture-of-experts model"):
        find_mlp_sites(model)
