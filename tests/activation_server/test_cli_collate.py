"""`neurons collate` and `neurons merge` through the command's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from activations.records.schema import METADATA_KEY
from tests.activations.reference import assert_columns_identical
from tests.tiny import random_documents, write_jsonl

ROOT = Path(__file__).parents[2]


def neurons(
    *args: str, cwd: Path, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "activation_server.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        timeout=timeout,
    )


@pytest.fixture
def workdir(tmp_path, tiny_models) -> Path:
    (tmp_path / "tiny.py").write_text(
        "from registry import register_model\n"
        f"register_model('tiny-llama', {str(tiny_models['llama'])!r}, user_visible_name='Tiny')\n"
    )
    write_jsonl(tmp_path / "docs.jsonl", random_documents(7, seed=3))
    return tmp_path


def collate_args(*extra: str) -> list[str]:
    return [
        "collate", "--register", "tiny", "--model", "tiny-llama", "--corpus", "docs.jsonl",
        "--engine", "eager", "--batch-size", "2", *extra,
    ]  # fmt: skip


def test_collate_and_merge_from_the_command_line(workdir):
    whole = neurons(*collate_args("--out", "whole.parquet", "--top-k", "5"), cwd=workdir)
    assert whole.returncode == 0, whole.stderr
    assert "wrote" in whole.stdout
    table = pq.read_table(workdir / "whole.parquet")
    assert table.num_rows == 2 * 24
    assert len(table.column("gate+_in+_hook_post_max_indices")[0].as_py()) == 5
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    assert meta["n_documents"] == 7 and meta["top_k"] == 5 and meta["model"] == "tiny-llama"

    layer0 = neurons(*collate_args("--out", "l0.parquet", "--layers", "0"), cwd=workdir)
    layer1 = neurons(*collate_args("--out", "l1.parquet", "--layers", "1"), cwd=workdir)
    assert layer0.returncode == 0 and layer1.returncode == 0, layer0.stderr + layer1.stderr
    assert set(pq.read_table(workdir / "l0.parquet").column("layer").to_pylist()) == {0}
    joined = neurons("merge", "l0.parquet", "l1.parquet", "--out", "both.parquet", cwd=workdir)
    assert joined.returncode == 0, joined.stderr
    assert pq.read_table(workdir / "both.parquet").num_rows == 2 * 24


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "0,7"], "valid layers are 0-1"),
        (["--layers", "x"], "invalid layers"),
        (["--top-k", "0"], "--top-k must be at least 1"),
        (["--corpus", "nowhere.txt"], "corpus file 'nowhere.txt' does not exist"),
        (["--corpus", "plays"], "unknown corpus 'plays'"),
        (["--max-docs", "0"], "--max-docs must be at least 1"),
        (["--model", "tiny-lama"], 'Did you mean: "tiny-llama"'),
        (["--engine", "turbo"], "invalid choice: 'turbo'"),
        (
            ["--engine", "kernel", "--dtype", "bfloat16"],
            "the kernel engine needs a GLU model in float32",
        ),
    ],
)
def test_bad_collate_arguments_are_clear_errors(workdir, extra, message):
    result = neurons(*collate_args("--out", "x.parquet", *extra), cwd=workdir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "x.parquet").exists()


def test_existing_output_is_kept_without_overwrite(workdir):
    (workdir / "x.parquet").write_bytes(b"precious")
    result = neurons(*collate_args("--out", "x.parquet"), cwd=workdir)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (workdir / "x.parquet").read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["missing.parquet", "a.parquet"], "missing.parquet does not exist"),
        (["a.parquet", "b.parquet"], "a.parquet is not a Parquet file"),
    ],
)
def test_merge_refuses_foreign_and_missing_files(workdir, files, message):
    (workdir / "a.parquet").write_bytes(b"not parquet")
    (workdir / "b.parquet").write_bytes(b"not parquet either")
    result = neurons("merge", *files, "--out", "m.parquet", cwd=workdir)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "m.parquet").exists()


@pytest.mark.slow
def test_embedded_smollm2_over_shakespeare(tmp_path):
    """The real embedded model (GGUF, de-quantised and cached) over two Shakespeare documents."""
    home = {"NEURONS_HOME": str(tmp_path / "home")}
    args = [
        "collate", "--model", "smollm2-135m", "--corpus", "shakespeare", "--max-docs", "2",
        "--max-tokens", "64", "--layers", "0,29", "--engine", "eager",
    ]  # fmt: skip
    first = neurons(*args, "--out", "smol.parquet", cwd=tmp_path, timeout=900, env=home)
    assert first.returncode == 0, first.stderr[-3000:]
    table = pq.read_table(tmp_path / "smol.parquet")
    assert table.num_rows == 2 * 1536
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    assert meta["corpus"] == "shakespeare@64" and meta["n_documents"] == 2
    assert 2 <= meta["n_tokens"] <= 128
    freqs = sum(table.column(f"{q}_freq").to_numpy() for q in ("gate+_in+", "gate+_in-"))
    assert 0 < freqs.mean() < 1
    # the second load comes from the converted cache, not the GGUF
    assert "converting SmolLM2-135M-Instruct.Q4_1.gguf" in first.stderr
    assert any((tmp_path / "home" / "models").iterdir())
    again = neurons(*args, "--out", "again.parquet", cwd=tmp_path, timeout=900, env=home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "converting" not in again.stderr
    assert_columns_identical(table, pq.read_table(tmp_path / "again.parquet"))
