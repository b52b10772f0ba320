"""Find a model's MLPs and capture their neurons with plain forward hooks on its own modules.

GLU MLPs (Llama, OLMo, OLMo2, Qwen2, Mistral, Gemma...) have gate_proj, up_proj and down_proj: the
gate and in values are the outputs of gate_proj and up_proj, and the product act(g)·u is the input
of down_proj, so no extra forward pass and no re-implementation is needed. GPT-2-style MLPs
(c_fc, act, c_proj) give hook_post alone: the input of c_proj.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from activations.derived_scalars import HOOK_POST
from activations.schema import GLU_LAYOUT, PLAIN_LAYOUT, RecordLayout


@dataclass(frozen=True)
class MlpSite:
    """One layer's MLP and the modules its neurons are read from."""

    layer: int
    mlp: nn.Module
    up: nn.Module  # produces u (GLU) or the pre-activation (plain)
    down: nn.Module  # its input is hook_post
    gate: nn.Module | None  # GLU only
    act: Callable[[torch.Tensor], torch.Tensor]

    @property
    def is_glu(self) -> bool:
        return self.gate is not None

    @property
    def n_neurons(self) -> int:
        weight = self.down.weight
        # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out]
        return weight.shape[1] if isinstance(self.down, nn.Linear) else weight.shape[0]


def find_mlp_sites(model: nn.Module) -> list[MlpSite]:
    """Every MLP, in layer order; raises if the architecture has none we can read."""
    sites: list[MlpSite] = []
    for _, module in model.named_modules():
        if all(hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            sites.append(
                MlpSite(
                    len(sites),
                    module,
                    module.up_proj,
                    module.down_proj,
                    module.gate_proj,
                    module.act_fn,
                )
            )
        elif all(hasattr(module, a) for a in ("c_fc", "c_proj", "act")):
            sites.append(MlpSite(len(sites), module, module.c_fc, module.c_proj, None, module.act))
    if not sites:
        raise ValueError(
            f"{type(model).__name__} has no MLP with gate_proj/up_proj/down_proj (GLU) or "
            "c_fc/c_proj (GPT-2 style) modules"
        )
    return sites


def layout_of(sites: list[MlpSite]) -> RecordLayout:
    return GLU_LAYOUT if sites[0].is_glu else PLAIN_LAYOUT


LayerCallback = Callable[[int, dict[str, torch.Tensor | None]], None]


class _EnoughLayers(Exception):
    """Raised by the last wanted layer's hook to end a forward pass early."""


class MlpCapture:
    """Context manager: while active, calls `callback(layer, tensors)` once per layer and forward.

    tensors holds "gate", "up", "act" (the model's act(gate), when its activation is a module it
    calls; None for plain MLPs) and HOOK_POST, each [B, T, N]. The forward
    pass inside the block stops once the last wanted layer is read: later layers cannot change
    it, so a question about layer 3 of 30 costs a tenth of a pass. The block's code after that
    pass does not run, so wrap only the pass.
    """

    def __init__(
        self, sites: list[MlpSite], callback: LayerCallback, layers: list[int] | None = None
    ):
        self.sites = [s for s in sites if layers is None or s.layer in layers]
        self.last_layer = max((s.layer for s in self.sites), default=-1)
        self.callback = callback
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._held: dict[int, dict[str, torch.Tensor]] = {}

    def __enter__(self) -> MlpCapture:
        for site in self.sites:
            held = self._held.setdefault(site.layer, {})
            if site.gate is not None:
                self._handles.append(site.gate.register_forward_hook(self._keep(held, "gate")))
                if isinstance(site.act, nn.Module):
                    self._handles.append(site.act.register_forward_hook(self._keep(held, "act")))
            self._handles.append(site.up.register_forward_hook(self._keep(held, "up")))
            self._handles.append(site.down.register_forward_pre_hook(self._emit(site, held)))
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._held.clear()
        return exc_type is _EnoughLayers

    @staticmethod
    def _keep(held: dict, name: str):
        def hook(module, inputs, output):
            held[name] = output

        return hook

    def _emit(self, site: MlpSite, held: dict):
        def hook(module, inputs):
            tensors = {
                "gate": held.pop("gate", None),
                "up": held.pop("up", None),
                "act": held.pop("act", None),
                HOOK_POST: inputs[0],
            }
            self.callback(site.layer, tensors)
            if site.layer == self.last_layer:
                raise _EnoughLayers

        return hook
