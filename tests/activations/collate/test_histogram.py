"""The value histogram of every engine, exactly against numpy.histogram of the same values (the
vocabulary's edges), per quadrant; written, read back, merged and resumed exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from activations.collate.accumulator import LayerAccumulator
from activations.collate.engines import BatchInfo, make_engine
from activations.collate.merge import merge_files
from activations.records.schema import GLU_LAYOUT, METADATA_KEY, histogram_column
from registry.vocabulary import (
    ALL_TOKENS,
    HISTOGRAM_BINS,
    HOOK_POST,
    HOOK_PRE,
    HOOK_PRE_LINEAR,
    QUADRANT_SIGNS,
    SWISH,
    histogram_edges,
    histogram_inner_edges,
)
from tests.activations.collate.test_collate import FAST, needs_kernel, run
from tests.activations.reference import full_activations

EDGES = np.array(histogram_edges())


def wide_values(generator: torch.Generator, b: int, t: int, n: int) -> dict[str, torch.Tensor]:
    """Values over 14 decades (past both ends of the bins), exact zeros in gate and in (tokens
    in no quadrant), and hook_post set on every edge, ±0.0, ±infinity and the least subnormal."""

    def spread(*shape: int) -> torch.Tensor:
        scale = 10.0 ** (torch.rand(*shape, generator=generator) * 14 - 9)
        return torch.randn(*shape, generator=generator) * scale

    gate, linear = spread(b, t, n), spread(b, t, n)
    gate[:, :, 0], linear[:, 1::3, 1 % n] = 0.0, 0.0
    post = F.silu(gate) * linear
    special = [*histogram_inner_edges(), -0.0, float("inf"), float("-inf"), 2.0**-149]
    special += [-e for e in histogram_inner_edges()]
    flat = post.view(-1)
    picks = torch.randperm(flat.numel(), generator=generator)[: len(special)]
    flat[picks] = torch.tensor(special)[: len(picks)]
    return {HOOK_PRE: gate, HOOK_PRE_LINEAR: linear, SWISH: F.silu(gate), HOOK_POST: post}


def numpy_histograms(values, valid, sign) -> np.ndarray:
    """[G, BINS, N]: numpy.histogram of hook_post's values of each quadrant's tokens (as the
    record has them: in and post flipped by `sign`), then of the tokens in none."""
    flip = np.ones(values[HOOK_PRE].shape[-1]) if sign is None else sign.numpy()
    gate = values[HOOK_PRE].numpy()
    linear = values[HOOK_PRE_LINEAR].numpy() * flip
    post = (values[HOOK_POST].numpy() * flip).astype(np.float32)
    real = valid.numpy()[..., None] & np.ones_like(gate, dtype=bool)
    masks = []
    for q in GLU_LAYOUT.quadrants:
        gs, us = QUADRANT_SIGNS[q]
        masks.append((gate * gs > 0) & (linear * us > 0) & real)
    masks.append(real & ~np.any(masks, axis=0))
    out = np.zeros((len(masks), HISTOGRAM_BINS, gate.shape[-1]), dtype=np.int64)
    for g, mask in enumerate(masks):
        for n in range(gate.shape[-1]):
            out[g, :, n] = np.histogram(post[..., n][mask[..., n]], bins=EDGES)[0]
    return out


ENGINES = [
    "eager",
    "compiled",
    pytest.param("kernel", marks=needs_kernel),
    pytest.param(
        "triton",
        marks=pytest.mark.skipif(
            not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
            reason="Triton runs on CUDA, or on a CPU under TRITON_INTERPRET=1",
        ),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("flipped", [False, True])
def test_every_engine_counts_what_numpy_histogram_counts(engine, flipped):
    """Three batches, padding, a last partial vector of neurons (21), GLUScope's sign flips."""
    if engine == "triton":
        pytest.importorskip("triton")
    device = "cuda" if engine == "triton" and torch.cuda.is_available() else "cpu"
    generator = torch.Generator().manual_seed(5)
    b, t, n = 3, 13, 21
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flipped else None
    folder = make_engine(engine, GLU_LAYOUT, F.silu)
    acc = LayerAccumulator(GLU_LAYOUT, n, 4, device)
    want = np.zeros((GLU_LAYOUT.histogram_groups(), HISTOGRAM_BINS, n), dtype=np.int64)
    for i in range(3):
        values = wide_values(generator, b, t, n)
        valid = torch.ones(b, t, dtype=torch.bool)
        valid[-1, t // 2 :] = False
        docs = torch.arange(i * b, (i + 1) * b)
        batch = BatchInfo(valid.to(device), docs, docs.to(device))
        on_device = {h: v.to(device) for h, v in values.items()}
        folder.fold(acc, on_device, batch, None if sign is None else sign.to(device))
        want += numpy_histograms(values, valid, sign)
    np.testing.assert_array_equal(acc.histogram.cpu().numpy(), want)
    assert int(acc.histogram.sum()) == 3 * int(valid.sum()) * n  # every real token, once


def file_histograms(path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {
        q: np.array(table.column(histogram_column(q)).to_pylist())
        for q in GLU_LAYOUT.histogram_quadrants()
    }


def test_a_collated_file_holds_numpy_s_histogram_of_each_neuron(tmp_path, tiny_models):
    """Through collate() of a tiny Llama: each row's columns are numpy.histogram of the model's
    own hook_post values, over every token and per quadrant; the bins are in the metadata."""
    out = run(tmp_path, "llama", tiny_models, engine=FAST)
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    lines = (tmp_path / "corpus.jsonl").read_text().splitlines()
    ids = [tokenizer(json.loads(line)["text"]).input_ids for line in lines]
    docs = full_activations(model, ids, 3, tokenizer.pad_token_id)
    n_tokens = sum(map(len, ids))
    table = pq.read_table(out)
    meta = json.loads(pq.read_schema(out).metadata[METADATA_KEY])
    assert meta["histogram"]["innerEdges"] == histogram_inner_edges()
    rows = table.to_pylist()
    for row in rows:
        layer, neuron = row["layer"], row["neuron"]
        gate = np.concatenate([d[layer]["g"][:, neuron] for d in docs])
        linear = np.concatenate([d[layer]["u"][:, neuron] for d in docs])
        post = np.concatenate([d[layer]["post"][:, neuron] for d in docs]).astype(np.float32)
        every = np.histogram(post, bins=EDGES)[0]
        assert row[histogram_column(ALL_TOKENS)] == every.tolist()
        for q in GLU_LAYOUT.quadrants:
            gs, us = QUADRANT_SIGNS[q]
            mask = (gate * gs > 0) & (linear * us > 0)
            assert row[histogram_column(q)] == np.histogram(post[mask], bins=EDGES)[0].tolist()
            assert sum(row[histogram_column(q)]) == row[f"{q}_count"]
        assert sum(row[histogram_column(ALL_TOKENS)]) == n_tokens


def test_merged_halves_hold_the_whole_run_s_counts_exactly(tmp_path, tiny_models):
    """Counts are integers: two halves merge into the whole's exactly, and a file of an
    earlier version (no histograms) is refused, not merged into wrong counts."""
    whole = run(tmp_path, "llama", tiny_models, "whole.parquet")
    first = run(tmp_path, "llama", tiny_models, "a.parquet", doc_range=(0, 6))
    second = run(tmp_path, "llama", tiny_models, "b.parquet", doc_range=(6, 11))
    merged = merge_files([second, first], tmp_path / "merged.parquet")
    want, got = file_histograms(whole), file_histograms(merged)
    for q in want:
        np.testing.assert_array_equal(got[q], want[q])
    parts = [file_histograms(first)[ALL_TOKENS], file_histograms(second)[ALL_TOKENS]]
    np.testing.assert_array_equal(parts[0] + parts[1], want[ALL_TOKENS])
    table = pq.read_table(first)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    del meta["histogram"]
    keep = [c for c in table.column_names if not c.endswith("_bin_counts")]
    old = table.select(keep).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    pq.write_table(old, tmp_path / "old.parquet")
    with pytest.raises(ValueError, match="histogram"):
        merge_files([second, tmp_path / "old.parquet"], tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_a_checkpoint_without_histograms_is_not_resumed_into_wrong_counts():
    acc = LayerAccumulator(GLU_LAYOUT, 5, 4)
    state = acc.state_dict()
    del state["histogram"]
    with pytest.raises(ValueError, match="without --resume"):
        LayerAccumulator(GLU_LAYOUT, 5, 4).load_state_dict(state)
