"""Capture a model's MLP neurons with plain forward hooks on its own modules, and compute the
vocabulary's sites from what was captured.

No extra forward pass and no re-implementation: the gate and in values are the outputs of the
model's projections, act(gate) the output of its activation module (where it is one) and
hook_post the input of its output projection (see adapters.py for where each family keeps them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from activations.models.adapters import MlpSite
from registry.vocabulary import (
    GATE_HOOK,
    GLU_SITES,
    HOOK_POST,
    IN_HOOK,
    REFACTOR_FLIPPED_HOOKS,
    SWISH,
)

# One layer's captured tensors by hook name, each [B, T, N]; a hook the capture did not see
# (act(gate) where the activation is a plain function, every GLU hook of a plain MLP) is None.
Captured = dict[str, "torch.Tensor | None"]
LayerCallback = Callable[[int, Captured], None]


def site_values(
    captured: Captured, act: Callable, sign: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Every site of the vocabulary in float32: the model's own tensor where it was captured,
    else the site's computation from gate, in and act(gate). `sign` (--refactor-glu, [N] of
    ±1) flips the sites the vocabulary says it flips."""
    if captured.get(GATE_HOOK) is None:  # a plain MLP: hook_post alone
        post = captured[HOOK_POST].float()
        return {HOOK_POST: post if sign is None else post * sign}
    gate, in_ = captured[GATE_HOOK].float(), captured[IN_HOOK].float()
    own_act = captured.get(SWISH)
    act_gate = own_act.float() if own_act is not None and own_act.shape == gate.shape else act(gate)
    values = {}
    for site in GLU_SITES:
        own = captured.get(site.hook)
        usable = own is not None and own.shape == gate.shape
        values[site.hook] = own.float() if usable else site.compute(gate, in_, act_gate)
    if sign is not None:
        for hook in REFACTOR_FLIPPED_HOOKS:
            values[hook] = values[hook] * sign
    return values


def forward_capturing(
    model: nn.Module,
    sites: list[MlpSite],
    callback: LayerCallback,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> None:
    """One forward pass of the model's base (no LM head, no cache) under MlpCapture, ended after
    the last of `sites`."""
    base = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    with torch.inference_mode(), MlpCapture(sites, callback):
        base(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            use_cache=False,
        )


class _EnoughLayers(Exception):
    """Raised by the last wanted layer's hook to end a forward pass early."""


class MlpCapture:
    """Context manager: while active, calls `callback(layer, captured)` once per layer and pass.

    The forward pass inside the block stops once the last wanted layer is read: later layers
    cannot change it, so a question about layer 3 of 30 costs a tenth of a pass. The block's code
    after that pass does not run, so wrap only the pass.
    """

    def __init__(
        self, sites: list[MlpSite], callback: LayerCallback, layers: list[int] | None = None
    ):
        self.sites = [s for s in sites if layers is None or s.layer in layers]
        self.last_layer = max((s.layer for s in self.sites), default=-1)
        self.callback = callback
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._held: dict[int, Captured] = {}

    def __enter__(self) -> MlpCapture:
        for site in self.sites:
            held = self._held.setdefault(site.layer, {})
            register = self._handles.append
            if site.adapter.fused_gate_in:
                register(site.in_module.register_forward_hook(self._keep_split(site, held)))
            elif site.gate_module is not None:
                register(site.in_module.register_forward_hook(self._keep(held, IN_HOOK)))
                register(site.gate_module.register_forward_hook(self._keep(held, GATE_HOOK)))
            if site.is_glu and isinstance(site.act, nn.Module):
                register(site.act.register_forward_hook(self._keep(held, SWISH)))
            register(site.out_module.register_forward_pre_hook(self._emit(site, held)))
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._held.clear()
        return exc_type is _EnoughLayers

    @staticmethod
    def _keep(held: Captured, name: str):
        def hook(module, inputs, output):
            held[name] = output

        return hook

    @staticmethod
    def _keep_split(site: MlpSite, held: Captured):
        def hook(module, inputs, output):
            held[GATE_HOOK], held[IN_HOOK] = site.split_gate_in(output)

        return hook

    def _emit(self, site: MlpSite, held: Captured):
        def hook(module, inputs):
            captured = {
                GATE_HOOK: held.pop(GATE_HOOK, None),
                IN_HOOK: held.pop(IN_HOOK, None),
                SWISH: held.pop(SWISH, None),
                HOOK_POST: inputs[0],
            }
            held.clear()
            self.callback(site.layer, captured)
            if site.layer == self.last_layer:
                raise _EnoughLayers

        return hook
