"""Attention probabilities that can be read, differentiated and ablated: an attention function
registered with transformers' AttentionInterface, used only during a debugger pass.

Eager attention in its math (scores, mask, softmax, weighted values), with grouped-query heads
expanded as transformers' repeat_kv does (query head h reads key/value head h // groups). While a
debugger pass runs, an observer sees each layer's probabilities before they weight the values and
may replace them (an ablation); outside a pass the model keeps its own implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

IMPLEMENTATION = "glu_neurons_debugger"


class AttentionObserver(Protocol):
    def attention(
        self, layer: int, query: torch.Tensor, key: torch.Tensor, probs: torch.Tensor
    ) -> torch.Tensor:
        """Sees [B, H, T, S] probabilities (query and expanded key, [B, H, T, d]); returns the
        probabilities the layer uses."""
        ...

    def values(self, layer: int, value: torch.Tensor) -> None:
        """Sees the layer's [B, KV, S, d] value vectors (before expansion)."""
        ...


_state = threading.local()


def debugger_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    groups = query.shape[1] // key.shape[1]
    key_all = key.repeat_interleave(groups, dim=1)
    value_all = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key_all.transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask[..., : key_all.shape[-2]], float("-inf"))
        else:
            scores = scores + attention_mask[..., : key_all.shape[-2]]
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    observer: AttentionObserver | None = getattr(_state, "observer", None)
    layer = getattr(module, "layer_idx", None)
    if observer is not None and layer is not None:
        observer.values(layer, value)
        probs = observer.attention(layer, query, key_all, probs)
    output = torch.matmul(probs, value_all).transpose(1, 2).contiguous()
    return output, probs


AttentionInterface.register(IMPLEMENTATION, debugger_attention)
AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


@contextmanager
def observed_attention(model: nn.Module, observer: AttentionObserver) -> Iterator[None]:
    """The model's attention runs through debugger_attention, seen by `observer`, inside the
    block (on this thread); its own implementation is restored after."""
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    before = {key: config._attn_implementation for key, config in configs.items()}
    _state.observer = observer
    try:
        for config in configs.values():
            config._attn_implementation = IMPLEMENTATION
        yield
    finally:
        _state.observer = None
        for key, config in configs.items():
            config._attn_implementation = before[key]
