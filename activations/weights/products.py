"""Reductions of a vocabulary-wide product, rows · matrixᵀ ([R, d] · [V, d]ᵀ), without holding it:
each row's k largest and k smallest values with their columns, and for the first rows the
central moments of the row (its skew and kurtosis).

The product is made a tile of columns at a time ([R, TILE] float32, about 19 MB for a chunk of
weight views: it stays in the L3 cache while it is reduced, and one buffer serves every tile, where
a whole [R, V] product was 226 MB of fresh memory per chunk). Extremes are exact: a tile's k
largest lie in the k blocks of BLOCK columns with the largest maxima, so only those blocks are
ranked. Moments are taken about the row's exact mean, known beforehand (row · the matrix's mean
row), and summed in float64 across tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TILE = 4096
BLOCK = 64


@dataclass
class Reduced:
    top_values: torch.Tensor  # [R, k], largest first
    top_ids: torch.Tensor  # [R, k] int64 columns
    bottom_values: torch.Tensor  # [R, k], smallest first
    bottom_ids: torch.Tensor
    skew: torch.Tensor  # [M] float32, for the first M rows (M = moment_rows)
    kurtosis: torch.Tensor


def extremes(values: torch.Tensor, k: int, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's k largest (or smallest) values and their columns, sorted, as topk gives them,
    found through the k blocks of BLOCK columns whose maxima (minima) rank first."""
    rows, width = values.shape
    if width % BLOCK or width // BLOCK <= k:
        return values.topk(k, dim=1, largest=largest)
    per_row = width // BLOCK
    blocks = values.view(rows, per_row, BLOCK)
    peaks = blocks.amax(dim=2) if largest else blocks.amin(dim=2)
    chosen = peaks.topk(k, dim=1, largest=largest).indices  # [R, k] block numbers
    # the chosen blocks as rows of a [R × blocks, BLOCK] view: index_select copies whole rows
    # (a gather of the same values took 15 times as long)
    flat = (chosen + torch.arange(rows).unsqueeze(1) * per_row).reshape(-1)
    inside = values.view(rows * per_row, BLOCK).index_select(0, flat).view(rows, k * BLOCK)
    found = inside.topk(k, dim=1, largest=largest)
    block, offset = found.indices // BLOCK, found.indices % BLOCK
    return found.values, chosen.gather(1, block) * BLOCK + offset


def mean_row(matrix: torch.Tensor) -> torch.Tensor:
    """The matrix's mean row in float64 (a row's mean over the vocabulary is row · this)."""
    return matrix.double().mean(dim=0)


def reduce_product(
    rows: torch.Tensor,
    matrix: torch.Tensor,
    k: int,
    moment_rows: int = 0,
    matrix_mean: torch.Tensor | None = None,
    tile: int = TILE,
) -> Reduced:
    """See the module's docstring. rows [R, d] and matrix [V, d], float32; matrix_mean its
    mean_row, where the caller reduces many row sets against one matrix."""
    n, vocabulary = rows.shape[0], matrix.shape[0]
    k = min(k, vocabulary)
    if matrix_mean is None:
        matrix_mean = mean_row(matrix)
    means = (rows[:moment_rows].double() @ matrix_mean).float().unsqueeze(1)
    sums = torch.zeros(3, moment_rows, dtype=torch.float64)  # Σc², Σc³, Σc⁴ per row
    tops, bottoms = [], []
    buffer = torch.empty(n, min(tile, vocabulary))
    for start in range(0, vocabulary, tile):
        stop = min(start + tile, vocabulary)
        product = buffer if stop - start == buffer.shape[1] else torch.empty(n, stop - start)
        torch.matmul(rows, matrix[start:stop].T, out=product)
        for found, largest in ((tops, True), (bottoms, False)):
            values, ids = extremes(product, min(k, stop - start), largest)
            found.append((values, ids + start))
        if moment_rows:
            centred = product[:moment_rows] - means
            squared = centred * centred
            sums[0] += squared.sum(dim=1, dtype=torch.float64)
            # each row summed alone, in float64: the same for a row however many rows come
            # with it (a float32 einsum takes another path with the row count, and its last
            # bits changed with it: one neuron's view would not be its row of the table)
            sums[1] += (squared * centred).sum(dim=1, dtype=torch.float64)
            sums[2] += (squared * squared).sum(dim=1, dtype=torch.float64)
    top_values, top_ids = _merge(tops, k, largest=True)
    bottom_values, bottom_ids = _merge(bottoms, k, largest=False)
    m2, m3, m4 = sums / vocabulary
    safe = torch.where(m2 > 0, m2, 1)
    skew, kurtosis = (m3 / safe.pow(1.5)).float(), (m4 / safe.square()).float()
    return Reduced(top_values, top_ids, bottom_values, bottom_ids, skew, kurtosis)


def _merge(
    parts: list[tuple[torch.Tensor, torch.Tensor]], k: int, largest: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k extremes of each row among every tile's own k."""
    values = torch.cat([v for v, _ in parts], dim=1)
    ids = torch.cat([i for _, i in parts], dim=1)
    found = values.topk(k, dim=1, largest=largest)
    return found.values, ids.gather(1, found.indices)
