"""Running totals of one layer: counts, float64 sums and the top-k lists; memory is O(k·N),
whatever the corpus length.

Candidates (each document's strongest value per quadrant, hook and neuron) reach the lists in two
ways: `add` takes a batch's per-document statistics (the torch engines), and an engine that
updates the lists itself (the CPU kernel) may hold some back in `held`, to enter together later.
Reading the lists (`top_*`, `state_dict`, `merge`) lets everything held enter first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from activations.collate.reduction import (
    ABSENT_DOC,
    ABSENT_SCORE,
    BatchStats,
    document_range,
    merge_top_k,
)
from activations.records.schema import RecordLayout
from registry.vocabulary import HISTOGRAM_BINS

TOP_NAMES = ("top_score", "top_value", "top_doc", "top_position")
# The lists are [P, k, N] views of [P, N, k] tensors: each (pair, neuron) list is contiguous,
# which is what the kernel inserts into.
LIST_ORDER = (0, 2, 1)


def in_list_order(tensor: torch.Tensor) -> bool:
    return tensor.permute(*LIST_ORDER).is_contiguous()


def to_list_order(tensor: torch.Tensor) -> torch.Tensor:
    """The same [P, k, N] values, stored [P, N, k]."""
    if in_list_order(tensor):
        return tensor
    return tensor.permute(*LIST_ORDER).contiguous().permute(*LIST_ORDER)


class Held(Protocol):
    """Candidates an engine holds back; `admit` lets them into the accumulator's lists."""

    def admit(self, acc: LayerAccumulator) -> None: ...


@dataclass
class LayerAccumulator:
    layout: RecordLayout
    n_neurons: int
    k: int
    device: torch.device | str = "cpu"
    with_histogram: bool = True
    """Whether to count the values' histogram (False only to measure what it costs)."""
    counts: torch.Tensor = field(init=False)  # [Q, N] int64
    sums: torch.Tensor = field(init=False)  # [Q, H, N] float64
    histogram: torch.Tensor | None = field(init=False)
    """[G, BINS, N] int64: tokens per (group, bin) of the vocabulary's histogram, the groups the
    quadrants and then the tokens in none (RecordLayout.histogram_groups); None without one."""
    last_doc: int = -1  # highest document index seen
    held: Held | None = field(default=None, repr=False)
    lists: list[torch.Tensor] = field(init=False, repr=False)
    """score, value, document, position, each [P, k, N]; read through top_* (which admit what
    is held) unless you are the engine that holds it."""
    _pending: list[tuple[torch.Tensor, ...]] = field(init=False, repr=False)
    _pending_docs: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        q, h, p = len(self.layout.quadrants), len(self.layout.hooks), len(self.layout.max_pairs())
        shape = (p, self.n_neurons, self.k)
        self.counts = torch.zeros(q, self.n_neurons, dtype=torch.int64, device=self.device)
        self.sums = torch.zeros(q, h, self.n_neurons, dtype=torch.float64, device=self.device)
        self.histogram = None
        if self.with_histogram:
            shape_h = (self.layout.histogram_groups(), HISTOGRAM_BINS, self.n_neurons)
            self.histogram = torch.zeros(shape_h, dtype=torch.int64, device=self.device)
        self.lists = [
            t.permute(*LIST_ORDER)
            for t in (
                torch.full(shape, ABSENT_SCORE, device=self.device),
                torch.zeros(shape, device=self.device),
                torch.full(shape, ABSENT_DOC, dtype=torch.int64, device=self.device),
                torch.full(shape, -1, dtype=torch.int64, device=self.device),
            )
        ]
        self._pending = []

    def settle(self) -> None:
        """Every candidate still waiting (buffered batches, an engine's held ones) enters."""
        held, self.held = self.held, None
        if held is not None:
            held.admit(self)
        self._flush_pending()

    def has_pending(self) -> bool:
        """Whether batches of `add` wait in the buffer."""
        return bool(self._pending)

    def _flush_pending(self) -> None:
        if self._pending:
            pending = [torch.cat(parts, dim=1) for parts in zip(*self._pending, strict=True)]
            self._pending, self._pending_docs = [], 0
            self._offer(*pending, in_doc_order=True)

    def _get(self, i: int) -> torch.Tensor:
        self.settle()
        return self.lists[i]

    def _set(self, i: int, tensor: torch.Tensor) -> None:
        self.settle()
        self.lists[i] = tensor

    # [P, k, N] each: score (|value|, -1 when absent), signed value, document, position
    top_score = property(lambda self: self._get(0), lambda self, t: self._set(0, t))
    top_value = property(lambda self: self._get(1), lambda self, t: self._set(1, t))
    top_doc = property(lambda self: self._get(2), lambda self, t: self._set(2, t))
    top_position = property(lambda self: self._get(3), lambda self, t: self._set(3, t))

    def add(
        self, stats: BatchStats, doc_indices: torch.Tensor, on_device: torch.Tensor | None = None
    ) -> None:
        """Fold in one batch's per-document statistics; doc_indices [B] (on the CPU) are the
        corpus indices of its rows, on_device the same already on this accumulator's device (on
        a GPU, a copy per layer would wait for the device). Batches of later documents wait in
        a small buffer (about k documents) and join the lists together: one merge per k
        documents instead of one per batch."""
        self.counts += stats.counts.sum(dim=1)
        self.sums += stats.sums.sum(dim=2, dtype=torch.float64)
        if self.histogram is not None:
            if stats.histogram is None:
                raise ValueError("this accumulator counts a histogram: the batch has none")
            self.histogram += stats.histogram
        if on_device is None:
            on_device = doc_indices.to(self.device)
        docs = on_device.view(1, -1, 1).expand_as(stats.positions)
        score = torch.where(stats.present, stats.values.abs(), ABSENT_SCORE)
        docs = torch.where(stats.present, docs, ABSENT_DOC)
        first, last = document_range(doc_indices)
        candidates = (score, stats.values, docs, stats.positions)
        if first > self.last_doc and bool((doc_indices.diff() > 0).all()):
            self._pending.append(candidates)
            self._pending_docs += len(doc_indices)
            if self._pending_docs >= self.k:
                self.settle()
        else:
            self.settle()
            self._offer(*candidates)
        self.last_doc = max(self.last_doc, last)

    def merge(self, other: LayerAccumulator) -> None:
        """Fold in the totals of a disjoint set of documents."""
        self.counts += other.counts
        self.sums += other.sums
        if self.histogram is not None:
            if other.histogram is None:
                raise ValueError("only totals that both count a histogram merge")
            self.histogram += other.histogram
        self.settle()
        self._offer(other.top_score, other.top_value, other.top_doc, other.top_position)
        self.last_doc = max(self.last_doc, other.last_doc)

    def _offer(self, score, value, doc, position, in_doc_order: bool = False) -> None:
        """Candidates [P, c, N] enter the lists where they rank in the top k."""
        running = self.lists
        candidates = (score, value, doc, position)
        if in_doc_order and running[0].device.type == "cpu":
            # Later documents lose ties, so a (pair, neuron) column changes only where a
            # candidate beats its current k-th score: once the lists fill, a fraction. (On a
            # GPU, choosing those columns would wait for the device: it merges them all.)
            columns = (score > running[0][:, -1:, :]).any(dim=1)  # [P, N]
            if not bool(columns.any()):
                return
            held = [t.permute(0, 2, 1) for t in running]  # [P, N, k] views
            new = [t.permute(0, 2, 1)[columns] for t in candidates]
            merged = merge_top_k(
                self.k,
                *(torch.cat([h[columns], n], dim=1) for h, n in zip(held, new, strict=True)),
            )
            for h, m in zip(held, merged, strict=True):
                h[columns] = m  # writes through the views into the running lists
            return
        self.lists = list(
            merge_top_k(
                self.k,
                *(torch.cat([r, c], dim=1) for r, c in zip(running, candidates, strict=True)),
            )
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = ("counts", "sums", *TOP_NAMES)
        state = {name: getattr(self, name).cpu() for name in names} | {"last_doc": self.last_doc}
        if self.histogram is not None:
            state["histogram"] = self.histogram.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.histogram is not None and "histogram" not in state:
            raise ValueError(
                "this checkpoint holds no value histograms (it was saved by an earlier version); "
                "start the collation over, without --resume"
            )
        for name, value in state.items():
            setattr(self, name, value.to(self.device) if torch.is_tensor(value) else value)
