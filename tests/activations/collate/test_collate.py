"""Collation checked column by column against brute force on tiny Llama, OLMo and GPT-2 models."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import registry
from activations.collate import CollateConfig, collate
from activations.collate import kernel as glu_kernel
from activations.collate.merge import merge_files
from activations.collate.run import checkpoint_path
from activations.records.schema import GLU_LAYOUT, METADATA_KEY
from tests.activations.reference import (
    assert_columns_identical,
    assert_matches,
    assert_same_up_to_ties,
    brute_force_records,
    full_activations,
)
from tests.tiny import random_documents, write_jsonl

K = 16
N_DOCS = 11  # fewer than k documents: the max lists are padded
# the default engine where it runs (a CPU with gcc), else plain torch
FAST = "kernel" if glu_kernel.available() else "eager"
needs_kernel = pytest.mark.skipif(
    not glu_kernel.available(), reason="the collation kernel needs gcc"
)
ENGINES = ["eager", pytest.param("kernel", marks=needs_kernel)]


def register(name: str, folder) -> None:
    registry.register_model(name, str(folder), user_visible_name=name)


def run(tmp_path, arch, tiny_models, name="out.parquet", **overrides):
    register(f"tiny-{arch}", tiny_models[arch])
    corpus = tmp_path / "corpus.jsonl"
    if not corpus.exists():
        write_jsonl(corpus, random_documents(N_DOCS, seed=1))
    settings = dict(
        model=f"tiny-{arch}",
        out=str(tmp_path / name),
        corpus=str(corpus),
        top_k=K,
        batch_size=3,
        engine=FAST,
        progress=False,
    )
    settings.update(overrides)
    return collate(CollateConfig(**settings))


def expected_records(tiny_models, arch, corpus_path, glu=True, batch_size=3):
    model = AutoModelForCausalLM.from_pretrained(tiny_models[arch]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
    documents = [json.loads(line)["text"] for line in corpus_path.read_text().splitlines()]
    ids = [tokenizer(d).input_ids for d in documents]
    acts = full_activations(model, ids, batch_size, tokenizer.pad_token_id)
    return brute_force_records(acts, K, glu=glu), sum(map(len, ids))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch", ["llama", "olmo", "phi3"])
def test_every_column_matches_brute_force(tmp_path, tiny_models, arch, engine):
    out = run(tmp_path, arch, tiny_models, engine=engine)
    expected, n_tokens = expected_records(tiny_models, arch, tmp_path / "corpus.jsonl")
    rows = pq.read_table(out).to_pylist()
    checked = assert_matches(rows, expected)
    assert checked > 1000
    meta = json.loads(pq.read_schema(out).metadata[METADATA_KEY])
    assert meta["n_tokens"] == n_tokens and meta["n_documents"] == N_DOCS
    # exact zeros (neuron 0's gate, neuron 1's in) fall in no quadrant
    for row in rows:
        if row["neuron"] in (0, 1):
            assert sum(row[f"{q}_freq"] for q in GLU_LAYOUT.quadrants) == 0
            assert all(math.isnan(row[f"{q}_hook_post_mean"]) for q in GLU_LAYOUT.quadrants)
            # no document reached the quadrant: k empty slots naming the documents read, as the
            # published files have them, then -1 (fewer documents than k were read)
            listed = list(range(N_DOCS)) + [-1] * (K - N_DOCS)
            assert row["gate+_in+_hook_post_max_indices"] == listed
            assert row["gate+_in+_hook_post_max_values"] == [0.0] * K
            assert row["gate+_in+_hook_post_max_positions"] == [-1] * K


def test_gpt2_style_mlp_records_hook_post(tmp_path, tiny_models):
    out = run(tmp_path, "gpt2", tiny_models, engine="eager")
    expected, _ = expected_records(tiny_models, "gpt2", tmp_path / "corpus.jsonl", glu=False)
    assert_matches(pq.read_table(out).to_pylist(), expected)


def test_batch_size_does_not_change_the_records(tmp_path, tiny_models):
    one = pq.read_table(run(tmp_path, "llama", tiny_models, "one.parquet", batch_size=64))
    many = pq.read_table(run(tmp_path, "llama", tiny_models, "many.parquet", batch_size=2))
    corpus = tmp_path / "corpus.jsonl"
    assert_matches(
        one.to_pylist(), expected_records(tiny_models, "llama", corpus, batch_size=64)[0]
    )
    assert_matches(
        many.to_pylist(), expected_records(tiny_models, "llama", corpus, batch_size=2)[0]
    )
    assert_same_up_to_ties(one.to_pylist(), many.to_pylist())


def test_card_columns_and_dtypes_read_back_through_datasets(tmp_path, tiny_models):
    import datasets

    out = run(tmp_path, "llama", tiny_models)
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train")
    features = loaded.features
    card_names = [f.name for f in GLU_LAYOUT.card_fields()]
    assert list(features)[: len(card_names)] == card_names
    assert features["layer"].dtype == "int64"
    assert features["gate+_in+_freq"].dtype == "float32"
    assert features["gate-_in+_swish_max_values"].feature.dtype == "float32"
    assert features["gate-_in+_swish_max_indices"].feature.dtype == "int64"
    assert "gate+_in+_swish_max_values" not in features  # redundant with hook_pre, as the card
    assert len(loaded) == 2 * 24
    assert pq.read_table(out).to_pandas().shape[0] == 2 * 24


def test_merge_of_two_halves_equals_whole(tmp_path, tiny_models):
    whole = run(tmp_path, "llama", tiny_models, "whole.parquet")
    first = run(tmp_path, "llama", tiny_models, "a.parquet", doc_range=(0, 6))
    second = run(tmp_path, "llama", tiny_models, "b.parquet", doc_range=(6, N_DOCS))
    merged = merge_files([second, first], tmp_path / "merged.parquet")
    expected, _ = expected_records(tiny_models, "llama", tmp_path / "corpus.jsonl")
    assert_matches(pq.read_table(merged).to_pylist(), expected)
    a, b = pq.read_table(whole), pq.read_table(merged)
    for column in a.column_names:
        if column.endswith(("_indices", "_positions", "_count")) or column in ("layer", "neuron"):
            assert a.column(column).equals(b.column(column)), column
    with pytest.raises(ValueError, match="overlapping"):
        merge_files([whole, first], tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_resume_gives_the_same_file_as_an_uninterrupted_run(tmp_path, tiny_models):
    whole = run(tmp_path, "olmo", tiny_models, "whole.parquet", checkpoint_every=1)
    target = tmp_path / "resumed.parquet"

    class Interrupted(Exception):
        pass

    def stop_after_two_batches(next_doc: int) -> None:
        if next_doc >= 6:
            raise Interrupted

    target = tmp_path / "not" / "yet" / "made" / "resumed.parquet"  # checkpoints make folders
    config = CollateConfig(
        model="tiny-olmo",
        out=str(target),
        corpus=str(tmp_path / "corpus.jsonl"),
        top_k=K,
        batch_size=3,
        engine=FAST,
        progress=False,
        checkpoint_every=1,
    )
    with pytest.raises(Interrupted):
        collate(config, on_batch=stop_after_two_batches)
    assert checkpoint_path(target).exists() and not target.exists()
    run(tmp_path, "olmo", tiny_models, str(target), checkpoint_every=1, resume=True)
    assert not checkpoint_path(target).exists()
    a, b = pq.read_table(whole), pq.read_table(target)
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert_columns_identical(a, b)


def test_existing_output_is_never_overwritten(tmp_path, tiny_models):
    out = run(tmp_path, "llama", tiny_models)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(tmp_path, "llama", tiny_models)
    assert out.read_bytes() == before
    run(tmp_path, "llama", tiny_models, overwrite=True, top_k=4)
    assert pq.read_table(out).column("gate+_in+_hook_post_max_values")[0].as_py().__len__() == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_refactor_glu_flips_in_and_post_of_neurons_pointing_apart(tmp_path, tiny_models, engine):
    plain = pq.read_table(
        run(tmp_path, "llama", tiny_models, "plain.parquet", engine=engine)
    ).to_pylist()
    flipped = pq.read_table(
        run(tmp_path, "llama", tiny_models, "flipped.parquet", refactor_glu=True, engine=engine)
    ).to_pylist()
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    mlp = model.model.layers[0].mlp
    dots = (mlp.gate_proj.weight * mlp.up_proj.weight).sum(1).detach()
    signs = {n: (-1 if float(d) < 0 else 1) for n, d in enumerate(dots)}
    assert -1 in signs.values() and 1 in signs.values()
    for a, b in zip(plain[:24], flipped[:24], strict=True):
        n = a["neuron"]
        if signs[n] == 1:
            np.testing.assert_equal(a, b)  # NaN equals NaN
        else:  # in flips sign, so quadrants in+ and in- swap
            assert b["gate+_in-_freq"] == a["gate+_in+_freq"]
            assert b["gate-_in+_hook_pre_mean"] == pytest.approx(
                a["gate-_in-_hook_pre_mean"], nan_ok=True
            )
            assert b["gate+_in-_hook_post_max_values"] == pytest.approx(
                [-v for v in a["gate+_in+_hook_post_max_values"]]
            )
    meta = json.loads(pq.read_schema(tmp_path / "flipped.parquet").metadata[METADATA_KEY])
    assert meta["refactor_glu"] is True


@pytest.mark.parametrize("engine", ["compiled", pytest.param("kernel", marks=needs_kernel)])
def test_fused_engines_equal_eager(tmp_path, tiny_models, engine):
    eager = pq.read_table(run(tmp_path, "llama", tiny_models, "eager.parquet", engine="eager"))
    fused = pq.read_table(run(tmp_path, "llama", tiny_models, "fused.parquet", engine=engine))
    expected, _ = expected_records(tiny_models, "llama", tmp_path / "corpus.jsonl")
    assert_matches(fused.to_pylist(), expected)
    for column in eager.column_names:
        if column.endswith(("_indices", "_positions", "_count")):
            assert eager.column(column).equals(fused.column(column)), column
