"""Where each architecture keeps its MLP neurons: one adapter per family, one row each.

A GLU neuron is read from the model's own modules, inside its own forward pass: the gate and in
values are the outputs of the gate and in projections (or the two halves of one fused projection),
act(gate) the output of the activation module, and hook_post the input of the output projection.
Adding a family is one entry of ADAPTERS (tests/activations/test_adapters.py adds one).
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


def register_mlp_layout(adapter: MlpAdapter) -> MlpAdapter:
    """Teach the project a model's MLP layout by its module names (a custom architecture, or
    remote code): `register_mlp_layout(MlpAdapter(name="mine", gate="wg", in_="wi", out="wo",
    act="act"))`, in a --register module. Registered layouts are tried before the built-in ones;
    the same name again replaces it."""
    ADAPTERS[:] = [adapter, *(a for a in ADAPTERS if a.name != adapter.name)]
    return adapter


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
    """Every MLP, in layer order; raises if the architecture has none an adapter knows."""
    sites: list[MlpSite] = []
    for _, module in model.named_modules():
        adapter = next((a for a in ADAPTERS if a.matches(module)), None)
        if adapter is not None:
            sites.append(MlpSite(len(sites), module, adapter))
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
