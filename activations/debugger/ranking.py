"""The k largest (or smallest) values of a large scalar tensor, in a fixed order: by value, ties
by position (flat index, lowest first), so that a shorter list is always a prefix of a longer one.

torch.topk over one flat slice of millions of values (a [layers, tokens, neurons] scalar) runs
on one thread and copies every value into a heap of (value, index) pairs, 60-100 ms a call on
SmolLM2's 2.9 M; a node table asks for a dozen such rankings. Every value of the top k is at
least the k-th largest of the rows' maxima (those maxima are k values of the tensor), so the
rows' maxima (one vectorized reduction) bound the candidates, all in the few rows whose maximum
reaches that bound, and topk ranks those alone.
"""

from __future__ import annotations

import torch

SMALL = 1 << 16  # below this many values, rank them all at once


def extremes(tensor: torch.Tensor, k: int, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The min(k, numel) largest (or smallest) values and their flat indices, ordered by value
    (descending for the largest), ties by flat index. A tensor with NaN is ranked by torch.topk
    alone (NaN counts as the largest value there)."""
    flat = tensor.reshape(-1)
    k = min(k, flat.numel())
    if k == 0:
        return flat[:0], torch.zeros(0, dtype=torch.long)
    rows = _rows(tensor, k)
    ends = flat if rows is None else (rows.amax(1) if largest else rows.amin(1))
    if bool(ends.isnan().any()):
        return flat.topk(k, largest=largest, sorted=True)
    if rows is None:
        candidates = torch.arange(flat.numel())
    else:
        bound = ends.topk(k, largest=largest, sorted=False).values
        bound = bound.min() if largest else bound.max()
        chosen = torch.nonzero(ends >= bound if largest else ends <= bound).flatten()
        part = rows[chosen]  # the rows whose extreme reaches the bound hold every candidate
        row, column = torch.nonzero(part >= bound if largest else part <= bound).unbind(1)
        candidates = chosen[row] * rows.shape[1] + column
    return _first_k(flat[candidates], candidates, k, largest)


def _rows(tensor: torch.Tensor, k: int) -> torch.Tensor | None:
    """The tensor as [rows, rest] over its first two dimensions (layers and tokens), where it
    is large and has at least k rows of more than one value; else None."""
    if tensor.numel() < SMALL or tensor.ndim < 3:
        return None
    count = tensor.shape[0] * tensor.shape[1]
    if count < k or count == tensor.numel():
        return None
    return tensor.reshape(count, -1)


def _first_k(
    values: torch.Tensor, where: torch.Tensor, k: int, largest: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k first of candidates (`where` ascending) in the fixed order."""
    kth = values.topk(k, largest=largest, sorted=False).values
    kth = kth.min() if largest else kth.max()
    better = values > kth if largest else values < kth
    tied = values == kth
    room = k - int(better.sum())
    keep = better | (tied & (tied.cumsum(0) <= room))
    values, where = values[keep], where[keep]
    order = values.sort(descending=largest, stable=True).indices
    return values[order], where[order]
