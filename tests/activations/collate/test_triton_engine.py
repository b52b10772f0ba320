"""The Triton engine against the torch reduction, under Triton's interpreter on the CPU (tiny
shapes: the interpreter runs each program in numpy), and through collate() of a tiny model.
Where a CUDA device is present, the same comparison runs on it."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from activations.collate.accumulator import LayerAccumulator
from activations.collate.reduction import batch_stats
from activations.records.schema import GLU_LAYOUT
from registry.vocabulary import HOOK_POST, HOOK_PRE, HOOK_PRE_LINEAR, SWISH
from tests.activations.collate.test_kernel import activations, assert_same_totals

triton = pytest.importorskip("triton", reason="Triton is not installed (pip install triton)")
# tests/conftest.py sets TRITON_INTERPRET=1 where there is no GPU, before Triton is imported
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICES = ["cpu"] if INTERPRETED else ["cuda"]


def run_both(values, valid, docs, k, device):
    from activations.collate.triton_engine import triton_batch_stats

    n = values[HOOK_PRE].shape[-1]
    want = LayerAccumulator(GLU_LAYOUT, n, k, torch.device(device))
    got = LayerAccumulator(GLU_LAYOUT, n, k, torch.device(device))
    for first in range(0, values[HOOK_PRE].shape[0], 2):
        rows = slice(first, first + 2)
        part = {h: v[rows].to(device) for h, v in values.items()}
        mask = valid[rows].to(device)
        want.add(batch_stats(GLU_LAYOUT, part, mask.unsqueeze(-1)), docs[rows])
        got.add(triton_batch_stats(GLU_LAYOUT, part, mask), docs[rows])
    want.settle()
    got.settle()
    return want, got


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("b", "t", "n", "k", "seed"), [(5, 20, 70, 4, 0), (3, 7, 5, 16, 1)])
def test_the_kernel_gives_the_torch_reduction(device, b, t, n, k, seed):
    """Exact lists (ties on a coarse grid, a BOS-like first token, exact zeros), fewer
    documents than k, padding and a partial block of neurons."""
    g = torch.Generator().manual_seed(seed)
    values = activations(g, b, t, n)
    valid = torch.rand(b, t, generator=g) > 0.2
    valid[:, 0] = True
    docs = torch.arange(10, 10 + b)
    want, got = run_both(values, valid, docs, k, device)
    assert_same_totals(want, got)


@pytest.mark.parametrize("device", DEVICES)
def test_sign_flips_follow_the_refactoring(device):
    """The engine folds the sites capture.site_values gives: --refactor-glu's flips included."""
    from activations.models.capture import site_values

    g = torch.Generator().manual_seed(3)
    raw = activations(g, 4, 9, 33)
    sign = torch.where(torch.rand(33, generator=g) > 0.5, 1.0, -1.0)
    captured = {HOOK_PRE: raw[HOOK_PRE], HOOK_PRE_LINEAR: raw[HOOK_PRE_LINEAR], SWISH: None,
                HOOK_POST: None}  # fmt: skip
    values = site_values(captured, F.silu, sign)
    assert torch.equal(values[HOOK_PRE_LINEAR], raw[HOOK_PRE_LINEAR] * sign)
    want, got = run_both(values, torch.ones(4, 9, dtype=torch.bool), torch.arange(4), 3, device)
    assert_same_totals(want, got)


@pytest.mark.skipif(not INTERPRETED, reason="collates on the CPU, under the interpreter")
def test_collate_with_the_triton_engine_matches_eager(tiny_models, tmp_path):
    import registry
    from activations.collate import CollateConfig, collate
    from tests.activations.reference import assert_columns_identical
    from tests.tiny import random_documents, write_jsonl

    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(7, seed=2, max_words=12))
    registry.register_model("tri", str(tiny_models["llama"]))
    out = {}
    for engine in ("eager", "triton"):
        path = str(tmp_path / f"{engine}.parquet")
        config = CollateConfig(model="tri", corpus=str(corpus), out=path, top_k=3, batch_size=3,
                               engine=engine, progress=False)  # fmt: skip
        out[engine] = collate(config)
    eager, fused = (pq.read_table(out[e]) for e in ("eager", "triton"))
    exact = [c for c in eager.column_names if not c.endswith(("_mean", "_total"))]
    assert_columns_identical(eager, fused, exact)  # counts, maxima, documents, positions
    for column in set(eager.column_names) - set(exact):  # sums: another order of additions
        np.testing.assert_allclose(eager[column].to_numpy(), fused[column].to_numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=column)  # fmt: skip


@pytest.mark.skipif(not INTERPRETED, reason="collates on the CPU, under the interpreter")
def test_the_engine_says_where_it_cannot_run(monkeypatch, tiny_models):
    from activations.collate.engines import choose_engine
    from activations.collate.triton_engine import why_not_available

    monkeypatch.delenv("TRITON_INTERPRET")
    assert "CUDA" in why_not_available("cpu")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="runs on CUDA devices .*use --engine compiled"):
        choose_engine("triton", GLU_LAYOUT, model)
    plain = GLU_LAYOUT.__class__(quadrants=("all",), hooks=(HOOK_POST,))
    assert "GLU layers" in why_not_available("cuda", plain)
