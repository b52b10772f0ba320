"""The running top-k of LayerAccumulator against a plain sort, through its public methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.collate.accumulator import LayerAccumulator
from activations.collate.reduction import ABSENT_DOC, BatchStats
from activations.records.schema import GLU_LAYOUT

# these batches carry only the lists; the histograms have tests of their own (test_histogram.py)

P, N = len(GLU_LAYOUT.max_pairs()), 5


def random_batch(rng: np.random.Generator, docs: list[int]) -> tuple[BatchStats, torch.Tensor]:
    """Per-document maxima with many exact ties (values drawn from a few levels) and gaps."""
    b = len(docs)
    values = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0], size=(P, b, N)).astype(np.float32)
    present = rng.random((P, b, N)) > 0.3
    positions = rng.integers(0, 50, size=(P, b, N))
    stats = BatchStats(
        counts=torch.zeros(len(GLU_LAYOUT.quadrants), b, N, dtype=torch.int32),
        sums=torch.zeros(len(GLU_LAYOUT.quadrants), len(GLU_LAYOUT.hooks), b, N),
        values=torch.from_numpy(np.where(present, values, 0.0)),
        positions=torch.from_numpy(np.where(present, positions, -1)),
        present=torch.from_numpy(present),
    )
    return stats, torch.tensor(docs)


def expected_top(batches, k: int) -> dict[tuple[int, int], list[tuple[int, float, int]]]:
    """{(pair, neuron): [(doc, value, position)]}, by |value| descending, ties to lower doc."""
    out = {}
    for p in range(P):
        for n in range(N):
            found = [
                (int(docs[i]), float(s.values[p, i, n]), int(s.positions[p, i, n]))
                for s, docs in batches
                for i in range(len(docs))
                if s.present[p, i, n]
            ]
            out[(p, n)] = sorted(found, key=lambda d: (-abs(d[1]), d[0]))[:k]
    return out


def assert_top(acc: LayerAccumulator, expected, k: int) -> None:
    for (p, n), want in expected.items():
        docs = acc.top_doc[p, :, n].tolist()
        got = [
            (d, float(acc.top_value[p, i, n]), int(acc.top_position[p, i, n]))
            for i, d in enumerate(docs)
            if d != ABSENT_DOC
        ]
        assert got == want, (p, n)
        assert len(docs) == k


@pytest.mark.parametrize("batch_size", [1, 3, 7])
@pytest.mark.parametrize("k", [1, 4, 16])
def test_running_top_k_equals_a_sort_with_ties_to_the_lower_document(batch_size, k):
    rng = np.random.default_rng(batch_size * 100 + k)
    batches = [
        random_batch(rng, list(range(start, start + batch_size)))
        for start in range(0, 40, batch_size)
    ]
    acc = LayerAccumulator(GLU_LAYOUT, N, k, with_histogram=False)
    for i, (stats, docs) in enumerate(batches):
        acc.add(stats, docs)
        if i == len(batches) // 2:  # reading mid-way folds the buffer in and changes nothing
            assert_top(acc, expected_top(batches[: i + 1], k), k)
    assert_top(acc, expected_top(batches, k), k)


def test_out_of_order_batches_and_merges_give_the_same_lists():
    rng = np.random.default_rng(7)
    batches = [random_batch(rng, [d, d + 1]) for d in range(0, 30, 2)]
    backwards = LayerAccumulator(GLU_LAYOUT, N, 4, with_histogram=False)
    for stats, docs in reversed(batches):
        backwards.add(stats, docs)
    halves = [LayerAccumulator(GLU_LAYOUT, N, 4, with_histogram=False) for _ in range(2)]
    for i, (stats, docs) in enumerate(batches):
        halves[i % 2].add(stats, docs)
    halves[1].merge(halves[0])
    for acc in (backwards, halves[1]):
        assert_top(acc, expected_top(batches, 4), 4)


def test_state_dict_round_trip_keeps_buffered_batches():
    rng = np.random.default_rng(3)
    batches = [random_batch(rng, [d]) for d in range(10)]
    acc = LayerAccumulator(GLU_LAYOUT, N, 16, with_histogram=False)
    for stats, docs in batches[:5]:
        acc.add(stats, docs)
    restored = LayerAccumulator(GLU_LAYOUT, N, 16, with_histogram=False)
    restored.load_state_dict(acc.state_dict())
    for stats, docs in batches[5:]:
        restored.add(stats, docs)
    assert_top(restored, expected_top(batches, 16), 16)


def test_document_index_over_the_key_range_is_refused():
    rng = np.random.default_rng(0)
    stats, _ = random_batch(rng, [0])
    with pytest.raises(ValueError, match="largest supported"):
        LayerAccumulator(GLU_LAYOUT, N, 4, with_histogram=False).add(stats, torch.tensor([2**31]))
