"""The GPU engine: one Triton kernel per layer and batch reads each hook's activations once and
computes every document's per-quadrant token counts, float32 sums of every hook and, for every
(quadrant, hook) pair, the value of largest |value| with its position as one int64 key
(reduction.max_key: |value|'s bits, then negative first, then the first position), so that the
torch reduction's passes over [B, T, N] become one. The running top-k lists are the
accumulator's, fed as the torch engines feed them, with nothing synchronised with the host per
layer. Each real token also adds one (an atomic add) to its (quadrant, bin, neuron) count of
the value histogram of the vocabulary's HISTOGRAM_HOOK.

Its quadrants and hooks are the vocabulary's: the layer's sites (capture.site_values: the
model's own tensors, the vocabulary's computations of the others, --refactor-glu's flips) are
stacked in the layout's hook order, and the kernel's four sign pairs are mapped onto the
layout's quadrants by their signs.

It runs where Triton does: on CUDA devices (Triton ships with CUDA builds of torch), and on a
CPU under Triton's interpreter (TRITON_INTERPRET=1: slow, for tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from activations.collate.reduction import BatchStats, decode_max_key
from activations.models.capture import site_values
from activations.records.schema import GLU_LAYOUT, RecordLayout
from registry.vocabulary import (
    GATE_HOOK,
    HISTOGRAM_BINS,
    HISTOGRAM_HOOK,
    HISTOGRAM_MAGNITUDES,
    HISTOGRAM_MIN_EXPONENT,
    HISTOGRAM_ZERO_BIN,
    IN_HOOK,
    QUADRANT_SIGNS,
)

BLOCK_T, BLOCK_N = 16, 64
# the kernel's four slots: (gate sign, in sign) in this order (triton_kernels.stats)
KERNEL_SIGNS = ((1, 1), (1, -1), (-1, 1), (-1, -1))
NONE = len(KERNEL_SIGNS)  # the kernel's histogram group of the tokens in no quadrant


def why_not_available(device: torch.device | str, layout: RecordLayout = GLU_LAYOUT) -> str | None:
    """None where the Triton engine can run; else why not."""
    signs = [QUADRANT_SIGNS.get(q) for q in layout.quadrants]
    glu = GATE_HOOK in layout.hooks and IN_HOOK in layout.hooks
    if not glu or any(s not in KERNEL_SIGNS for s in signs):
        return "the Triton engine reduces GLU layers (gate and in projections)"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "Triton is not installed (it ships with CUDA builds of torch; pip install triton)"
    if torch.device(device).type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return "the Triton engine runs on CUDA devices (or on a CPU under TRITON_INTERPRET=1)"
    return None


def _stats_kernel():
    from activations.collate.triton_kernels import stats

    return stats


def triton_batch_stats(
    layout: RecordLayout,
    values: dict[str, torch.Tensor],
    valid: torch.Tensor,
    histogram: bool = True,
) -> BatchStats:
    """reduction.batch_stats of one GLU layer's [B, T, N] values of every hook of the layout
    (`valid` [B, T]: real tokens), in one kernel; with `histogram`, the value histogram of the
    HISTOGRAM_HOOK too (the layout must hold it)."""
    hooks = layout.hooks
    stacked = torch.stack([values[h] for h in hooks])  # [H, B, T, N], the layout's order
    H, B, T, N = stacked.shape
    device = stacked.device
    counts = torch.empty(4, B, N, dtype=torch.int32, device=device)
    sums = torch.empty(4, H, B, N, dtype=torch.float32, device=device)
    keys = torch.empty(4 * H, B, N, dtype=torch.int64, device=device)
    histogram = histogram and HISTOGRAM_HOOK in hooks
    # int32 counts of the batch (B·T tokens at most), by the kernel's groups: its slots, none
    hist = (
        torch.zeros(NONE + 1, HISTOGRAM_BINS, N, dtype=torch.int32, device=device)
        if histogram
        else counts
    )
    rows = valid.reshape(B, T).to(torch.uint8).contiguous()
    plane = torch.tensor([B * T * N], dtype=torch.int64, device=device)
    grid = (B, (N + BLOCK_N - 1) // BLOCK_N)
    _stats_kernel()[grid](
        stacked, plane, rows, counts, sums, keys, hist, B, T, N, H,
        GATE=hooks.index(GATE_HOOK), IN=hooks.index(IN_HOOK),
        POST=hooks.index(HISTOGRAM_HOOK) if histogram else 0,
        BLOCK_H=max(2, 1 << (H - 1).bit_length()), HAS_HIST=histogram, BINS=HISTOGRAM_BINS,
        ZERO=HISTOGRAM_ZERO_BIN, STEPS=HISTOGRAM_MAGNITUDES, BASE=127 + HISTOGRAM_MIN_EXPONENT - 1,
        NONE=NONE, BLOCK_T=BLOCK_T, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    slot = {q: KERNEL_SIGNS.index(QUADRANT_SIGNS[q]) for q in layout.quadrants}
    pairs = [slot[q] * H + hooks.index(h) for q, h in layout.max_pairs()]
    value, position, present = decode_max_key(keys[pairs])
    q_order = [slot[q] for q in layout.quadrants]
    return BatchStats(
        counts=counts[q_order], sums=sums[q_order], values=value,
        positions=position, present=present,
        histogram=hist[[*q_order, NONE]].to(torch.int64) if histogram else None,
    )  # fmt: skip


class TritonEngine:
    name = "triton"

    def __init__(self, layout: RecordLayout, act: Callable) -> None:
        self.layout = layout
        self.act = act

    def fold(self, acc, captured, batch, sign) -> None:
        values = site_values(captured, self.act, sign)
        stats = triton_batch_stats(
            self.layout, values, batch.valid, histogram=acc.histogram is not None
        )
        acc.add(stats, batch.doc_indices, batch.on_device)
