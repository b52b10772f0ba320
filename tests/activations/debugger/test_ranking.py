"""ranking.extremes against a brute force: every value sorted, ties by flat index."""

from __future__ import annotations

import pytest
import torch

from activations.debugger.ranking import extremes


def brute_force(tensor: torch.Tensor, k: int, largest: bool) -> tuple[list[float], list[int]]:
    flat = tensor.reshape(-1).tolist()
    order = sorted(range(len(flat)), key=lambda i: (-flat[i] if largest else flat[i], i))[:k]
    return [flat[i] for i in order], order


def as_lists(values: torch.Tensor, where: torch.Tensor) -> tuple[list[float], list[int]]:
    return values.tolist(), where.tolist()


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("k", [1, 10, 40])
def test_a_large_scalar_ranks_as_sorting_every_value(largest, k):
    generator = torch.Generator().manual_seed(k)
    tensor = torch.randn(6, 16, 1024, generator=generator)
    tensor[2, 3, :50] = tensor.max() if largest else tensor.min()  # ties at the top
    tensor[:, 5] = 0.0  # a row of equal values
    assert as_lists(*extremes(tensor, k, largest)) == brute_force(tensor, k, largest)


@pytest.mark.parametrize("largest", [True, False])
def test_ties_at_the_kth_value_keep_the_first_positions(largest):
    tensor = torch.zeros(8, 16, 1024)  # every value equal
    tensor[7, 15, 1023] = 1.0 if largest else -1.0
    values, where = extremes(tensor, 5, largest)
    assert where.tolist() == [tensor.numel() - 1, 0, 1, 2, 3]
    assert values.tolist() == [1.0 if largest else -1.0, 0.0, 0.0, 0.0, 0.0]


def test_a_shorter_ranking_is_the_prefix_of_a_longer_one():
    tensor = torch.randint(-3, 4, (10, 20, 600)).float()  # many ties
    long = as_lists(*extremes(tensor, 30, True))
    for k in (1, 7, 29):
        short = as_lists(*extremes(tensor, k, True))
        assert short == (long[0][:k], long[1][:k])


def test_small_tensors_and_k_beyond_their_size():
    tensor = torch.tensor([[[3.0], [1.0]], [[3.0], [-2.0]]])
    assert as_lists(*extremes(tensor, 10, True)) == ([3.0, 3.0, 1.0, -2.0], [0, 2, 1, 3])
    assert as_lists(*extremes(tensor, 0, True)) == ([], [])


def test_infinities_rank_and_nan_ranks_as_torch_topk_does():
    tensor = torch.randn(4, 32, 1024)
    tensor[1, 2, 3] = float("inf")
    tensor[3, 0, 0] = float("-inf")
    assert as_lists(*extremes(tensor, 3, True)) == brute_force(tensor, 3, True)
    assert as_lists(*extremes(tensor, 3, False)) == brute_force(tensor, 3, False)
    tensor[0, 0, 7] = float("nan")
    values, where = extremes(tensor, 2, True)
    expected = tensor.reshape(-1).topk(2)
    assert where.tolist() == expected.indices.tolist() and values[0].isnan()
