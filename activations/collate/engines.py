"""How collation reduces a layer's captured activations into its accumulator: engines behind
one interface.

"kernel": glu_kernel.c, for float32 GLU models on a CPU with gcc (the fastest there; built for
its vectors: AVX-512, AVX2, NEON or SSE2);
"triton": one fused Triton kernel per layer (triton_engine.py), for GLU models on CUDA devices,
asked for by name until it is measured on a GPU; "compiled": torch.compile, any device;
"eager": plain torch ops, the slowest, nothing to build;
"auto": the kernel where it fits, else compiled where the job is large enough to repay its
first compilation (warmup.py), else eager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from activations.collate import warmup
from activations.collate.accumulator import LayerAccumulator
from activations.collate.config import check_engine
from activations.collate.reduction import BatchStats, batch_stats
from activations.models.capture import Captured, site_values
from activations.records.schema import GLU_LAYOUT, RecordLayout
from registry.vocabulary import GATE_HOOK, HOOK_POST, IN_HOOK, SITE_BY_HOOK, SWISH


@dataclass(frozen=True)
class BatchInfo:
    """What every layer of one batch shares, made once per batch."""

    valid: torch.Tensor  # [B, T] bool: real tokens
    doc_indices: torch.Tensor  # [B] int64 on the CPU: corpus index of each row
    on_device: torch.Tensor  # the same on the model's device


class Engine(Protocol):
    name: str

    def fold(
        self,
        acc: LayerAccumulator,
        captured: Captured,
        batch: BatchInfo,
        sign: torch.Tensor | None,
    ) -> None:
        """Add one layer's captured activations of one batch to its running totals."""


class TorchEngine:
    """Per-document statistics by torch ops (fused into one pass by torch.compile when
    `compiled`), merged into the lists by the accumulator."""

    def __init__(self, layout: RecordLayout, act: Callable, compiled: bool) -> None:
        self.name = "compiled" if compiled else "eager"

        def stats(gate, in_, own_act, post, valid, sign, histogram):
            captured = {GATE_HOOK: gate, IN_HOOK: in_, SWISH: own_act, HOOK_POST: post}
            s = batch_stats(layout, site_values(captured, act, sign), valid, histogram)
            return s.counts, s.sums, s.values, s.positions, s.present, s.histogram

        self._stats = torch.compile(stats, dynamic=True) if compiled else stats
        self._compiled_yet = not compiled

    def fold(self, acc, captured, batch, sign) -> None:
        if not self._compiled_yet:  # the first call compiles: said, timed, remembered
            self._compiled_yet = True
            with warmup.announced():
                self._fold(acc, captured, batch, sign)
            return
        self._fold(acc, captured, batch, sign)

    def _fold(self, acc, captured, batch, sign) -> None:
        counts, sums, values, positions, present, histogram = self._stats(
            captured[GATE_HOOK],
            captured[IN_HOOK],
            captured[SWISH],
            captured[HOOK_POST],
            batch.valid.unsqueeze(-1),
            sign,
            acc.histogram is not None,
        )
        stats = BatchStats(counts, sums, values, positions, present, histogram)
        acc.add(stats, batch.doc_indices, batch.on_device)


class KernelEngine:
    """The CPU kernel: one pass over each vector of neurons, the lists updated in place."""

    name = "kernel"

    def __init__(self, act: Callable) -> None:
        from activations.collate import kernel, kernel_header

        self._kernel = kernel
        self._product = kernel_header.product_hook()
        self._act = act
        self._product_is_own: dict[int, bool] = {}  # per accumulator (layer)

    def fold(self, acc, captured, batch, sign) -> None:
        values = site_values(captured, self._act)
        product = self._product
        key = id(acc)
        if key not in self._product_is_own:  # as in every GLU we know; checked once per layer
            a, b = SITE_BY_HOOK[product].product_of or ()
            self._product_is_own[key] = torch.equal(values[product], values[a] * values[b])
        if self._product_is_own[key]:
            del values[product]  # the kernel multiplies: a quarter less to read
        self._kernel.fold_batch(acc, values, batch.valid, batch.doc_indices, sign)


def kernel_fits(layout: RecordLayout, model: torch.nn.Module) -> bool:
    from activations.collate import kernel

    weight = next(model.parameters())
    return (
        layout == GLU_LAYOUT
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and kernel.available()
    )


def choose_engine(
    requested: str,
    layout: RecordLayout,
    model: torch.nn.Module,
    neuron_tokens: int | None = None,
) -> str:
    """The engine that runs `requested` here; an explicit "kernel" that cannot run is an error.
    `auto` takes compiled only where the job (`neuron_tokens`: tokens × neurons, where known)
    repays its first compilation."""
    check_engine(requested)
    fits = kernel_fits(layout, model)
    if requested == "auto":
        if fits:
            return "kernel"
        return "compiled" if warmup.compiling_pays(neuron_tokens) else "eager"
    if requested == "kernel" and not fits:
        raise ValueError(
            "the kernel engine needs a GLU model in float32 on a CPU, and gcc (or $CC); "
            "use --engine compiled or eager"
        )
    if requested == "triton":
        from activations.collate.triton_engine import why_not_available

        why = why_not_available(next(model.parameters()).device, layout)
        if why is not None:
            raise ValueError(f"{why}; use --engine compiled or eager")
    return requested


def make_engine(name: str, layout: RecordLayout, act: Callable) -> Engine:
    """An engine by the name choose_engine gave."""
    if name == "kernel":
        return KernelEngine(act)
    if name == "triton":
        from activations.collate.triton_engine import TritonEngine

        return TritonEngine(layout, act)
    return TorchEngine(layout, act, compiled=name == "compiled")
