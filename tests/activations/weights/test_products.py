"""A vocabulary-wide product reduced tile by tile equals the same reductions of the whole
product, made explicitly here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.weights.products import BLOCK, extremes, reduce_product


def test_extremes_through_blocks_are_topk():
    values = torch.randn(50, BLOCK * 20, generator=torch.Generator().manual_seed(1))
    values[3, 7 * BLOCK : 8 * BLOCK] += 10  # one block holds all the largest of a row
    values[4, 5] = -50  # an extreme alone in its block
    for largest in (True, False):
        expected = values.topk(10, dim=1, largest=largest)
        found = extremes(values, 10, largest)
        assert torch.equal(found[0], expected.values)
        assert torch.equal(found[1], expected.indices)


@pytest.mark.parametrize("tile", [128, 640, 4096])  # 2 or 10 blocks a tile (one ragged), or one
def test_reduce_product_is_the_whole_products_reductions(tile):
    g = torch.Generator().manual_seed(2)
    rows, matrix = torch.randn(12, 16, generator=g), torch.randn(1000, 16, generator=g)
    matrix[:, 0] += 3  # a mean row far from zero: moments must be about each row's own mean
    found = reduce_product(rows, matrix, k=7, moment_rows=5, tile=tile)
    product = rows.double().numpy() @ matrix.double().numpy().T
    order = np.argsort(-product, axis=1, kind="stable")
    assert found.top_ids.tolist() == order[:, :7].tolist()
    assert found.bottom_ids.tolist() == order[:, ::-1][:, :7].tolist()
    assert found.top_values.numpy() == pytest.approx(np.sort(product)[:, ::-1][:, :7], rel=1e-5)
    assert found.bottom_values.numpy() == pytest.approx(np.sort(product)[:, :7], rel=1e-5)
    centred = product[:5] - product[:5].mean(axis=1, keepdims=True)
    m2, m3, m4 = ((centred**p).mean(axis=1) for p in (2, 3, 4))
    assert found.skew.numpy() == pytest.approx(m3 / m2**1.5, rel=1e-4, abs=1e-5)
    assert found.kurtosis.numpy() == pytest.approx(m4 / m2**2, rel=1e-4)
    assert found.skew.shape == (5,)
