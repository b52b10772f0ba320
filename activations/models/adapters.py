"""Where each architecture keeps its MLP neurons: one adapter per family, one row each.

A GLU neuron is read from the model's own modules, inside its own forward pass: the gate and in
values are the outputs of the gate and in projections (or the two halves of one fused projection),
act(gate) the output of the activation module, and hook_post the input of the output projection.
A model's adapter is chosen by its architecture's name (its class, and its config's
`architectures`) from ARCHITECTURES; a mixture-of-experts model is refused by name or by its
config (its experts each have gate, in and out projections: read as layers, they would be
mistaken for several). An architecture the table does not name is matched by its module names,
where exactly one layout fits and gives one MLP per layer of its config. Adding a family is one
row of ARCHITECTURES (and an MlpAdapter where its layout is new;
tests/activations/models/test_adapters.py adds one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MlpAdapter:
    """The attribute names of one MLP family's modules."""

    name: str
    out: str
    """The output projection; its input is hook_post, act(gate)·in."""
    act: str
    """The activation function (a module or a function)."""
    in_: str
    """The projection whose output is in (GLU) or the pre-activation (plain MLPs)."""
    gate: str | None = None
    """The gate projection of a GLU; None for plain MLPs."""
    fused_gate_in: bool = False
    """`in_` produces [gate, in] concatenated on the last dimension (Phi-3's gate_up_proj)."""
    families: str = ""
    """Which architectures use it, for messages."""

    @property
    def is_glu(self) -> bool:
        return self.gate is not None or self.fused_gate_in

    def modules(self) -> tuple[str, ...]:
        gate = [self.gate] if self.gate else []
        return (*gate, self.in_, self.out, self.act)

    def matches(self, module: nn.Module) -> bool:
        return all(hasattr(module, name) for name in self.modules())


ADAPTERS: list[MlpAdapter] = [
    MlpAdapter(
        name="gated",
        gate="gate_proj",
        in_="up_proj",
        out="down_proj",
        act="act_fn",
        families="Llama, OLMo, OLMo2, Qwen2, Mistral, Gemma, ...",
    ),
    MlpAdapter(
        name="fused-gated",
        in_="gate_up_proj",
        out="down_proj",
        act="activation_fn",
        fused_gate_in=True,
        families="Phi-3",
    ),
    MlpAdapter(name="gpt2", in_="c_fc", out="c_proj", act="act", families="GPT-2"),
]


# architecture name (a model class, as config.json's `architectures` names it) -> adapter name
ARCHITECTURES: dict[str, str] = {
    **dict.fromkeys(
        (
            "LlamaForCausalLM",
            "OlmoForCausalLM",
            "Olmo2ForCausalLM",
            "Qwen2ForCausalLM",
            "Qwen3ForCausalLM",
            "MistralForCausalLM",
            "GemmaForCausalLM",
            "Gemma2ForCausalLM",
            "GraniteForCausalLM",
            "StableLmForCausalLM",
        ),
        "gated",
    ),
    "Phi3ForCausalLM": "fused-gated",
    "GPT2LMHeadModel": "gpt2",
}
# mixture-of-experts architectures: refused until their experts' neurons are read as such
MIXTURE_OF_EXPERTS: frozenset[str] = frozenset(
    {
        "MixtralForCausalLM",
        "OlmoeForCausalLM",
        "Qwen2MoeForCausalLM",
        "Qwen3MoeForCausalLM",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "PhimoeForCausalLM",
        "GraniteMoeForCausalLM",
        "JambaForCausalLM",
        "DbrxForCausalLM",
    }
)
# config fields that count a layer's experts (transformers' names for them)
EXPERT_COUNTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


def register_mlp_layout(adapter: MlpAdapter, architectures: tuple[str, ...] = ()) -> MlpAdapter:
    """Teach the project a model's MLP layout by its module names (a custom architecture, or
    remote code): `register_mlp_layout(MlpAdapter(name="mine", gate="wg", in_="wi", out="wo",
    act="act"), architectures=("MineForCausalLM",))`, in a --register module. Registered layouts
    are tried before the built-in ones; the same name again replaces it."""
    ADAPTERS[:] = [adapter, *(a for a in ADAPTERS if a.name != adapter.name)]
    ARCHITECTURES.update(dict.fromkeys(architectures, adapter.name))
    return adapter


def architecture_names(model: nn.Module) -> list[str]:
    """The model's class, then the architectures its config names."""
    config = getattr(model, "config", None)
    return [type(model).__name__, *(getattr(config, "architectures", None) or [])]


def refuse_mixture_of_experts(model: nn.Module) -> None:
    """A clear error for a mixture-of-experts model, by its architecture's name or its config."""
    config = getattr(model, "config", None)
    experts = next(
        (n for field in EXPERT_COUNTS if isinstance(n := getattr(config, field, None), int)), 0
    )
    named = [n for n in architecture_names(model) if n in MIXTURE_OF_EXPERTS]
    if named or experts > 1:
        what = named[0] if named else type(model).__name__
        count = f" ({experts} experts per layer)" if experts > 1 else ""
        raise ValueError(
            f"{what} is a mixture-of-experts model{count}: its MLP neurons belong to experts, "
            "each with its own gate, in and out projections, which this project does not read "
            "yet; dense GLU and MLP models are supported "
            f"({', '.join(sorted(ARCHITECTURES))})"
        )


def adapter_for(model: nn.Module) -> MlpAdapter | None:
    """The adapter the model's architecture names in ARCHITECTURES; None where it names none."""
    by_name = {a.name: a for a in ADAPTERS}
    for name in architecture_names(model):
        if ARCHITECTURES.get(name) in by_name:
            return by_name[ARCHITECTURES[name]]
    return None


def describe_adapters() -> str:
    """The known layouts, for the error that names none."""
    return "; ".join(f"{a.families or a.name}: " + "/".join(a.modules()) for a in ADAPTERS)


@dataclass(frozen=True)
class MlpSite:
    """One layer's MLP and the modules its neurons are read from."""

    layer: int
    mlp: nn.Module
    adapter: MlpAdapter

    @property
    def is_glu(self) -> bool:
        return self.adapter.is_glu

    @property
    def in_module(self) -> nn.Module:
        return getattr(self.mlp, self.adapter.in_)

    @property
    def gate_module(self) -> nn.Module | None:
        return getattr(self.mlp, self.adapter.gate) if self.adapter.gate else None

    @property
    def out_module(self) -> nn.Module:
        return getattr(self.mlp, self.adapter.out)

    @property
    def act(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return getattr(self.mlp, self.adapter.act)

    @property
    def n_neurons(self) -> int:
        weight = self.out_module.weight
        # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out]
        return weight.shape[1] if isinstance(self.out_module, nn.Linear) else weight.shape[0]

    def split_gate_in(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A fused projection's output as (gate, in)."""
        gate, in_ = output.chunk(2, dim=-1)
        return gate, in_

    def out_weights(self) -> torch.Tensor:
        """W_out as [neurons, d_model]: each neuron's output direction."""
        weight = self.out_module.weight
        return weight.T if isinstance(self.out_module, nn.Linear) else weight

    def in_weights(self) -> torch.Tensor:
        """W_in as [neurons, d_model] (a GLU's in, a plain MLP's pre-activation)."""
        if self.is_glu:
            return self.gate_in_weights()[1]
        weight = self.in_module.weight
        return weight if isinstance(self.in_module, nn.Linear) else weight.T

    def gate_in_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_gate and W_in as [neurons, d_model] each."""
        if self.adapter.fused_gate_in:  # output rows [gate; in]
            gate, in_ = self.in_module.weight.chunk(2, dim=0)
            return gate, in_
        assert self.gate_module is not None, "a plain MLP has no gate"
        return self.gate_module.weight, self.in_module.weight


def find_mlp_sites(model: nn.Module) -> list[MlpSite]:
    """Every MLP, in layer order, by the adapter its architecture's name chooses (else the one
    layout its module names fit); raises for a mixture-of-experts model, and where no adapter
    fits or the MLPs found are not one per layer of the config."""
    refuse_mixture_of_experts(model)
    named = adapter_for(model)
    candidates = [named] if named is not None else ADAPTERS
    sites: list[MlpSite] = []
    for _, module in model.named_modules():
        adapter = next((a for a in candidates if a.matches(module)), None)
        if adapter is not None:
            sites.append(MlpSite(len(sites), module, adapter))
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if sites and isinstance(layers, int) and len(sites) != layers:
        raise ValueError(
            f"{type(model).__name__} has {len(sites)} modules in the "
            f"{sites[0].adapter.name} MLP layout for {layers} layers: not one MLP per layer; "
            "name its layout with activations.models.adapters.register_mlp_layout(MlpAdapter("
            "...), architectures=(...)) in a --register module"
        )
    if len({s.adapter.name for s in sites}) > 1:
        found = sorted({s.adapter.name for s in sites})
        raise ValueError(
            f"{type(model).__name__} has MLPs in several layouts ({', '.join(found)}); name its "
            "architecture's with activations.models.adapters.register_mlp_layout(..., "
            "architectures=(...))"
        )
    if not sites:
        raise ValueError(
            f"{type(model).__name__} has no MLP in a layout this project knows "
            f"({describe_adapters()}); name its modules with "
            "activations.models.adapters.register_mlp_layout(MlpAdapter(...)) in a --register "
            "module"
        )
    return sites


def glu_refactor_signs(site: MlpSite) -> torch.Tensor:
    """-1 for neurons whose gate and in weight vectors point apart (GLUScope's refactoring):
    flipping the sign of in, and of the neuron's output weights, leaves the model's function
    unchanged and puts the neuron's typical activations in the gate+_in+ quadrant."""
    gate, in_ = site.gate_in_weights()
    dot = (gate.float() * in_.float()).sum(dim=1)
    return torch.where(dot < 0, -1.0, 1.0)
