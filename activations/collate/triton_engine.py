"""The GPU engine: one Triton kernel per layer and batch reads each activation once and computes
every document's per-quadrant token counts, float32 sums of every hook and, for every (quadrant,
hook) pair, the value of largest |value| with its position as one int64 key (reduction.max_key:
|value|'s bits, then negative first, then the first position), so that the torch reduction's
passes over [B, T, N] become one. The running top-k lists are the accumulator's, fed as the
torch engines feed them, with nothing synchronised with the host per layer. Each real token also
adds one (an atomic add) to its (quadrant, bin, neuron) count of the value histogram.

It runs where Triton does: on CUDA devices (Triton ships with CUDA builds of torch), and on a
CPU under Triton's interpreter (TRITON_INTERPRET=1: slow, for tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from activations.collate.reduction import BatchStats, decode_max_key
from activations.records.schema import GLU_LAYOUT, RecordLayout
from registry.vocabulary import (
    GATE_HOOK,
    HISTOGRAM_BINS,
    HISTOGRAM_MAGNITUDES,
    HISTOGRAM_MIN_EXPONENT,
    HISTOGRAM_ZERO_BIN,
    HOOK_POST,
    IN_HOOK,
    SWISH,
)

BLOCK_T, BLOCK_N = 16, 64
# the kernel's order: quadrants by (gate sign, in sign), hooks gate, in, act(gate), act(gate)·in
KERNEL_QUADRANTS = ("gate+_in+", "gate+_in-", "gate-_in+", "gate-_in-")
KERNEL_HOOKS = (GATE_HOOK, IN_HOOK, SWISH, HOOK_POST)
NONE = len(KERNEL_QUADRANTS)  # the kernel's histogram group of the tokens in no quadrant


def why_not_available(device: torch.device | str, layout: RecordLayout = GLU_LAYOUT) -> str | None:
    """None where the Triton engine can run; else why not."""
    if layout != GLU_LAYOUT or set(layout.quadrants) != set(KERNEL_QUADRANTS):
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
    gate: torch.Tensor,
    in_: torch.Tensor,
    act_gate: torch.Tensor,
    post: torch.Tensor | None,
    valid: torch.Tensor,
    sign: torch.Tensor | None,
    histogram: bool = True,
) -> BatchStats:
    """reduction.batch_stats of one GLU layer's [B, T, N] activations in one kernel (post None:
    act(gate)·in, computed in the kernel; `sign` flips in and post, as --refactor-glu does);
    with `histogram`, the histogram of act(gate)·in (the vocabulary's HISTOGRAM_HOOK) too."""
    B, T, N = gate.shape
    device = gate.device
    counts = torch.empty(4, B, N, dtype=torch.int32, device=device)
    sums = torch.empty(4, 4, B, N, dtype=torch.float32, device=device)
    keys = torch.empty(16, B, N, dtype=torch.int64, device=device)
    rows = valid.reshape(B, T).to(torch.uint8).contiguous()
    tensors = [t.contiguous() for t in (gate, in_, act_gate)]
    post_arg = post.contiguous() if post is not None else tensors[2]
    sign_arg = sign.float().contiguous() if sign is not None else counts
    # int32 counts of the batch (B·T tokens at most), by the kernel's groups: its quadrants, none
    hist = (
        torch.zeros(NONE + 1, HISTOGRAM_BINS, N, dtype=torch.int32, device=device)
        if histogram
        else counts
    )
    grid = (B, (N + BLOCK_N - 1) // BLOCK_N)
    _stats_kernel()[grid](
        *tensors, post_arg, rows, sign_arg, counts, sums, keys, hist, B, T, N,
        HAS_POST=post is not None, HAS_SIGN=sign is not None, HAS_HIST=histogram,
        BINS=HISTOGRAM_BINS, ZERO=HISTOGRAM_ZERO_BIN, STEPS=HISTOGRAM_MAGNITUDES,
        BASE=127 + HISTOGRAM_MIN_EXPONENT - 1, NONE=NONE, BLOCK_T=BLOCK_T, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    q_order = [KERNEL_QUADRANTS.index(q) for q in layout.quadrants]
    h_order = [KERNEL_HOOKS.index(h) for h in layout.hooks]
    pairs = [KERNEL_QUADRANTS.index(q) * 4 + KERNEL_HOOKS.index(h) for q, h in layout.max_pairs()]
    value, position, present = decode_max_key(keys[pairs])
    return BatchStats(
        counts=counts[q_order], sums=sums[q_order][:, h_order], values=value,
        positions=position, present=present,
        histogram=hist[[*q_order, NONE]].to(torch.int64) if histogram else None,
    )  # fmt: skip


class TritonEngine:
    name = "triton"

    def __init__(self, layout: RecordLayout, act: Callable) -> None:
        self.layout = layout
        self.act = act

    def fold(self, acc, captured, batch, sign) -> None:
        gate, in_ = captured[GATE_HOOK], captured[IN_HOOK]
        own_act, post = captured.get(SWISH), captured.get(HOOK_POST)
        act_gate = own_act if own_act is not None and own_act.shape == gate.shape else None
        if act_gate is None:
            act_gate = self.act(gate)
        if post is not None and post.shape != gate.shape:
            post = None
        stats = triton_batch_stats(
            self.layout, gate, in_, act_gate, post, batch.valid, sign, acc.histogram is not None
        )
        acc.add(stats, batch.doc_indices, batch.on_device)
