"""Reduce one batch of a layer's neuron activations to a quadrant record, and keep running totals.

Per quadrant q and hook h: a token count, float64 sums (exact to merge), and for each document its
value of largest |value| in q; a running top-k keeps the k strongest documents, ties to the lower
document index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from activations import glu_kernel
from activations.derived_scalars import HOOK_POST, HOOK_PRE, HOOK_PRE_LINEAR, SWISH
from activations.schema import ALL_TOKENS, QUADRANT_SIGNS, RecordLayout

ABSENT_SCORE = -1.0  # below every |value|: "no token of this document is in the quadrant"
ABSENT_DOC = torch.iinfo(torch.int64).max  # sorts after every real document index


@dataclass
class BatchStats:
    counts: torch.Tensor  # [Q, B, N] int32, per document
    sums: torch.Tensor  # [Q, H, B, N] float32, per document
    values: torch.Tensor  # [P, B, N] float32, per document the value of largest |value|
    positions: torch.Tensor  # [P, B, N] int64, its token position in the document
    present: torch.Tensor  # [P, B, N] bool, whether the document has a token in the quadrant


def quadrant_masks(
    layout: RecordLayout,
    gate: torch.Tensor | None,
    linear: torch.Tensor | None,
    valid: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Strict sign quadrants of real (non-padding) tokens; exact zeros fall in none."""
    if layout.quadrants == (ALL_TOKENS,):
        return {ALL_TOKENS: valid}
    signs = {1: (gate > 0, linear > 0), -1: (gate < 0, linear < 0)}
    return {q: signs[gs][0] & signs[ls][1] & valid for q, (gs, ls) in QUADRANT_SIGNS.items()}


def batch_stats(
    layout: RecordLayout,
    values: dict[str, torch.Tensor],
    valid: torch.Tensor,
) -> BatchStats:
    """Per-document counts, sums and maxima of one batch; values are [B, T, N], valid [B, T, 1].

    Every reduction runs over the tokens of one document only, so a compiler fuses them all into
    one pass; a document's sum (at most max_tokens terms) is float32, which halves the memory
    traffic, and from there on sums are float64, so partial results merge exactly.
    """
    masks = quadrant_masks(layout, values.get(HOOK_PRE), values.get(HOOK_PRE_LINEAR), valid)
    counts = torch.stack([masks[q].sum(dim=1, dtype=torch.int32) for q in layout.quadrants])
    sums = torch.stack(
        [
            torch.stack([torch.where(masks[q], values[h], 0.0).sum(dim=1) for h in layout.hooks])
            for q in layout.quadrants
        ]
    )
    n_positions = valid.shape[1]
    last = (2**31 - 1) - torch.arange(n_positions, device=valid.device).view(1, -1, 1)
    best_values, best_positions, present = [], [], []
    for q, h in layout.max_pairs():
        key = torch.where(masks[q], max_key(values[h], last), -1).amax(dim=1)
        value, position, found = decode_max_key(key)
        best_values.append(value)
        best_positions.append(position)
        present.append(found)
    return BatchStats(
        counts=counts,
        sums=sums,
        values=torch.stack(best_values),
        positions=torch.stack(best_positions),
        present=torch.stack(present),
    )


def max_key(values: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """An int64 whose maximum over tokens picks the largest |value|, then the negative value,
    then the lowest position: one plain max reduction instead of a slower argmax.

    Bits: |value|'s float32 bits (ordered like the floats, as they are non-negative), the sign,
    then 2^31-1-position.
    """
    bits = values.float().view(torch.int32).to(torch.int64)
    return ((bits & 0x7FFFFFFF) << 32) | ((bits < 0).to(torch.int64) << 31) | last


def decode_max_key(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(signed value, position, found) of a reduced max_key; -1 means no token."""
    found = key >= 0
    magnitude = (key >> 32).to(torch.int32).view(torch.float32)
    value = torch.where(((key >> 31) & 1).bool(), -magnitude, magnitude)
    position = (2**31 - 1) - (key & 0x7FFFFFFF)
    return torch.where(found, value, 0.0), torch.where(found, position, -1), found


def glu_values(
    gate: torch.Tensor,
    linear: torch.Tensor,
    post: torch.Tensor,
    act: Callable,
    swish: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The four hooks of a GLU neuron in float32; the product is the model's own, and so is
    act(gate) where the capture saw it (`swish`)."""
    gate = gate.float()
    return {
        HOOK_PRE: gate,
        HOOK_PRE_LINEAR: linear.float(),
        SWISH: act(gate) if swish is None else swish.float(),
        HOOK_POST: post.float(),
    }


MAX_DOC = 2**31 - 1  # document indices share an int64 with a float's bits in a top-k key


def top_k_key(score: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """An int64 that orders candidates by score, then by lower document index: with it one
    torch.topk replaces two stable sorts. Absent candidates get -1, below every real one.

    Bits: the score's float32 bits (ordered like the floats, as scores are non-negative), then
    MAX_DOC - document index.
    """
    bits = score.view(torch.int32).to(torch.int64)
    key = (bits << 32) | (MAX_DOC - doc.clamp(max=MAX_DOC))
    return torch.where(score >= 0, key, -1)


def merge_top_k(
    k: int,
    score: torch.Tensor,
    value: torch.Tensor,
    doc: torch.Tensor,
    position: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the k candidates (dim 1) of largest score, ties to the lower document index, sorted.

    Every document stands at most once per column, so keys never tie except among absent
    candidates, which are all alike.
    """
    keep = top_k_key(score, doc).topk(k, dim=1, sorted=True).indices
    return tuple(t.gather(1, keep) for t in (score, value, doc, position))  # type: ignore[return-value]


def _document_range(doc_indices: torch.Tensor) -> tuple[int, int]:
    first, last = int(doc_indices.min()), int(doc_indices.max())
    if last > MAX_DOC:
        raise ValueError(f"document index {last} is over the largest supported, {MAX_DOC}")
    return first, last


TOP_NAMES = ("top_score", "top_value", "top_doc", "top_position")


@dataclass
class LayerAccumulator:
    """Running totals of one layer; memory is O(k·N), whatever the corpus length.

    Batches of later documents wait in a small buffer (at most about k documents) and join the
    running top-k lists together: one merge per k documents instead of one per batch; with the
    CPU kernel, candidates wait in its waiting room (glu_kernel.waiting_room) likewise. Reading
    the lists (`top_*`, `state_dict`, `merge`) folds both in first.
    """

    layout: RecordLayout
    n_neurons: int
    k: int
    device: torch.device | str = "cpu"
    counts: torch.Tensor = field(init=False)
    sums: torch.Tensor = field(init=False)
    last_doc: int = -1  # highest document index seen
    _top: list[torch.Tensor] = field(init=False, repr=False)
    _pending: list[tuple[torch.Tensor, ...]] = field(init=False, repr=False)
    _pending_docs: int = field(init=False, repr=False, default=0)
    _threshold: torch.Tensor | None = field(init=False, repr=False, default=None)  # kernel's
    _waiting: list[torch.Tensor] | None = field(init=False, repr=False, default=None)  # kernel's

    def __post_init__(self) -> None:
        q, h, p = len(self.layout.quadrants), len(self.layout.hooks), len(self.layout.max_pairs())
        shape = (p, self.n_neurons, self.k)  # viewed [P, k, N]; each list contiguous (kernel)
        self.counts = torch.zeros(q, self.n_neurons, dtype=torch.int64, device=self.device)
        self.sums = torch.zeros(q, h, self.n_neurons, dtype=torch.float64, device=self.device)
        self._top = [
            t.permute(*glu_kernel.LIST_ORDER)
            for t in (
                torch.full(shape, ABSENT_SCORE, device=self.device),
                torch.zeros(shape, device=self.device),
                torch.full(shape, ABSENT_DOC, dtype=torch.int64, device=self.device),
                torch.full(shape, -1, dtype=torch.int64, device=self.device),
            )
        ]
        self._pending = []

    def _get(self, i: int) -> torch.Tensor:
        self.flush()
        return self._top[i]

    def _set(self, i: int, tensor: torch.Tensor) -> None:
        self.flush()
        self._top[i] = tensor
        self._threshold = None

    # [P, k, N] each: score (|value|, -1 when absent), signed value, document, position
    top_score = property(lambda self: self._get(0), lambda self, t: self._set(0, t))
    top_value = property(lambda self: self._get(1), lambda self, t: self._set(1, t))
    top_doc = property(lambda self: self._get(2), lambda self, t: self._set(2, t))
    top_position = property(lambda self: self._get(3), lambda self, t: self._set(3, t))

    def add(
        self, stats: BatchStats, doc_indices: torch.Tensor, on_device: torch.Tensor | None = None
    ) -> None:
        """Fold in one batch; doc_indices [B] (on the CPU) are the corpus indices of its rows,
        on_device the same already on this accumulator's device (on a GPU, a copy per layer
        would wait for the device)."""
        self.counts += stats.counts.sum(dim=1)
        self.sums += stats.sums.sum(dim=2, dtype=torch.float64)
        if on_device is None:
            on_device = doc_indices.to(self.device)
        docs = on_device.view(1, -1, 1).expand_as(stats.positions)
        score = torch.where(stats.present, stats.values.abs(), ABSENT_SCORE)
        docs = torch.where(stats.present, docs, ABSENT_DOC)
        first, last = _document_range(doc_indices)
        candidates = (score, stats.values, docs, stats.positions)
        if first > self.last_doc and bool((doc_indices.diff() > 0).all()):
            self._pending.append(candidates)
            self._pending_docs += len(doc_indices)
            if self._pending_docs >= self.k:
                self.flush()
        else:
            self.flush()
            self._keep_top(*candidates)
        self.last_doc = max(self.last_doc, last)

    def fold(
        self,
        values: dict[str, torch.Tensor],
        valid: torch.Tensor,
        doc_indices: torch.Tensor,
        sign: torch.Tensor | None = None,
    ) -> None:
        """Fold in one batch of raw GLU activations ([B, T, N] per hook, valid [B, T]) with the
        CPU kernel: the reduction in one pass, and the top-k lists, which candidates may enter
        a few documents later (flush). sign flips in and post
        (--refactor-glu)."""
        _, last = _document_range(doc_indices)
        self._flush_pending()
        self._top = [glu_kernel.to_list_order(t) for t in self._top]
        if self._threshold is None:  # each list's k-th score; the kernel keeps it up to date
            self._threshold = self._top[0][:, -1, :].contiguous()
        if self._waiting is None:
            self._waiting = glu_kernel.waiting_room(len(self._top[0]), self.n_neurons)
        glu_kernel.fold_batch(
            values,
            valid,
            doc_indices,
            sign,
            self.counts,
            self.sums,
            self._top,
            self._threshold,
            self._waiting,
        )
        self.last_doc = max(self.last_doc, last)

    def flush(self) -> None:
        """Fold the buffered batches and the kernel's waiting candidates into the lists."""
        self._flush_pending()
        if self._waiting is not None and self._threshold is not None:
            glu_kernel.admit_all(self._top, self._threshold, self._waiting)
            self._waiting = None  # made anew by the next fold

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        pending = [torch.cat(parts, dim=1) for parts in zip(*self._pending, strict=True)]
        self._pending, self._pending_docs = [], 0
        self._keep_top(*pending, in_doc_order=True)

    def merge(self, other: LayerAccumulator) -> None:
        """Fold in the totals of a disjoint set of documents."""
        self.counts += other.counts
        self.sums += other.sums
        self._keep_top(other.top_score, other.top_value, other.top_doc, other.top_position)
        self.last_doc = max(self.last_doc, other.last_doc)

    def _keep_top(self, score, value, doc, position, in_doc_order: bool = False) -> None:
        self.flush()
        self._threshold = None
        running = self._top
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
        self._top = list(
            merge_top_k(
                self.k,
                *(torch.cat([r, c], dim=1) for r, c in zip(running, candidates, strict=True)),
            )
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = ("counts", "sums", *TOP_NAMES)
        return {name: getattr(self, name).cpu() for name in names} | {"last_doc": self.last_doc}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value.to(self.device) if torch.is_tensor(value) else value)
