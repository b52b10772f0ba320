"""The torch reduction of one batch of a layer's neuron activations, and the top-k merge.

Per quadrant q and hook h: a token count, float32 sums per document, and for each document its
value of largest |value| in q (with its position); merge_top_k keeps the k strongest documents,
ties to the lower document index. Per quadrant (and for the tokens in none), the batch's counts
of HISTOGRAM_HOOK's values in each bin of the vocabulary's histogram (docs/histogram.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from activations.records.schema import RecordLayout
from registry.vocabulary import (
    ALL_TOKENS,
    GATE_HOOK,
    HISTOGRAM_BINS,
    HISTOGRAM_HOOK,
    HISTOGRAM_MAGNITUDES,
    HISTOGRAM_MIN_EXPONENT,
    HISTOGRAM_ZERO_BIN,
    IN_HOOK,
    QUADRANT_SIGNS,
)

ABSENT_SCORE = -1.0  # below every |value|: "no token of this document is in the quadrant"
ABSENT_DOC = torch.iinfo(torch.int64).max  # sorts after every real document index


@dataclass
class BatchStats:
    counts: torch.Tensor  # [Q, B, N] int32, per document
    sums: torch.Tensor  # [Q, H, B, N] float32, per document
    values: torch.Tensor  # [P, B, N] float32, per document the value of largest |value|
    positions: torch.Tensor  # [P, B, N] int64, its token position in the document
    present: torch.Tensor  # [P, B, N] bool, whether the document has a token in the quadrant
    histogram: torch.Tensor | None = None
    """[G, BINS, N] int64 over the batch: tokens per (group, bin) of HISTOGRAM_HOOK's values,
    the groups the layout's quadrants, then the tokens in none (RecordLayout.histogram_groups)."""


def quadrant_masks(
    layout: RecordLayout,
    gate: torch.Tensor | None,
    in_: torch.Tensor | None,
    valid: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Strict sign quadrants of real (non-padding) tokens; exact zeros fall in none."""
    if layout.quadrants == (ALL_TOKENS,):
        return {ALL_TOKENS: valid}
    signs = {1: (gate > 0, in_ > 0), -1: (gate < 0, in_ < 0)}
    return {q: signs[gs][0] & signs[ls][1] & valid for q, (gs, ls) in QUADRANT_SIGNS.items()}


def histogram_bins(values: torch.Tensor) -> torch.Tensor:
    """Each value's bin of the vocabulary's histogram, from its float32 bits: the exponent of
    |value| for the positives, of the float below |value| for the negatives (whose bins close
    away from zero, on their lower side as numpy.histogram's do: [-2^(e+1), -2^e)), exact
    zeros in the zero bin.
    """
    bits = values.float().view(torch.int32)
    magnitude = bits & 0x7FFFFFFF
    negative = bits < 0
    exponent = torch.where(negative, magnitude - 1, magnitude) >> 23
    step = (exponent - (127 + HISTOGRAM_MIN_EXPONENT - 1)).clamp(0, HISTOGRAM_MAGNITUDES - 1)
    signed = torch.where(negative, HISTOGRAM_ZERO_BIN - 1 - step, HISTOGRAM_ZERO_BIN + 1 + step)
    return torch.where(magnitude == 0, HISTOGRAM_ZERO_BIN, signed)


def histogram_counts(
    layout: RecordLayout, value: torch.Tensor, masks: dict[str, torch.Tensor], valid: torch.Tensor
) -> torch.Tensor:
    """[G, BINS, N] counts of one batch's [B, T, N] values per (group, bin); padding in none."""
    groups = layout.histogram_groups()
    group = torch.full_like(value, groups - 1, dtype=torch.int32)
    for i, q in enumerate(layout.quadrants):
        group = torch.where(masks[q], i, group)
    index = group * HISTOGRAM_BINS + histogram_bins(value)
    index = torch.where(valid, index, groups * HISTOGRAM_BINS).to(torch.int64)  # a spare row
    n = value.shape[-1]
    index = index.reshape(-1, n)
    counts = torch.zeros(groups * HISTOGRAM_BINS + 1, n, dtype=torch.int64, device=value.device)
    counts.scatter_add_(0, index, torch.ones_like(index))
    return counts[:-1].view(groups, HISTOGRAM_BINS, n)


def batch_stats(
    layout: RecordLayout,
    values: dict[str, torch.Tensor],
    valid: torch.Tensor,
    histogram: bool = True,
) -> BatchStats:
    """Per-document counts, sums and maxima of one batch; values are [B, T, N], valid [B, T, 1].

    Every reduction runs over the tokens of one document only, so a compiler fuses them all into
    one pass; a document's sum (at most max_tokens terms) is float32, which halves the memory
    traffic, and from there on sums are float64, so partial results merge exactly. With
    `histogram`, the batch's counts of HISTOGRAM_HOOK's values per (group, bin) too.
    """
    masks = quadrant_masks(layout, values.get(GATE_HOOK), values.get(IN_HOOK), valid)
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
        histogram=(
            histogram_counts(
                layout, values[HISTOGRAM_HOOK], masks, valid.expand_as(values[HISTOGRAM_HOOK])
            )
            if histogram
            else None
        ),
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


def document_range(doc_indices: torch.Tensor) -> tuple[int, int]:
    first, last = int(doc_indices.min()), int(doc_indices.max())
    if last > MAX_DOC:
        raise ValueError(f"document index {last} is over the largest supported, {MAX_DOC}")
    return first, last
