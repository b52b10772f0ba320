"""torchrun with 2 CPU processes (gloo) gives the file of one process; a killed job resumes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from activations.collate.distributed import RankInfo, shard
from tests.activations.reference import assert_columns_identical
from tests.tiny import random_documents, write_jsonl

ROOT = Path(__file__).parents[3]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize("n_docs", [0, 1, 7, 8, 23])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_disjoint_whole_batches_covering_everything(n_docs, world):
    batch = 2
    ranges = [shard(10, 10 + n_docs, batch, RankInfo(r, world, r)) for r in range(world)]
    covered = [d for a, b in ranges for d in range(a, b)]
    assert covered == list(range(10, 10 + n_docs))
    assert all((a - 10) % batch == 0 for a, b in ranges if b > a)


def run(tmp_path: Path, nproc: int | None, out: str, *extra: str) -> subprocess.CompletedProcess:
    args = [
        "--register", "tiny", "--model", "tiny-llama", "--corpus", "docs.jsonl",
        "--batch-size", "2", "--top-k", "4", "--engine", "eager", "--out", out, *extra,
    ]  # fmt: skip
    if nproc is None:
        command = [sys.executable, "-m", "activation_server.cli", "collate", *args]
    else:
        launch = [TORCHRUN, "--standalone", f"--nproc-per-node={nproc}"]
        command = [*launch, "-m", "activations.collate", *args]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def workdir(tmp_path, tiny_models) -> Path:
    (tmp_path / "tiny.py").write_text(
        "from registry import register_model\n"
        f"register_model('tiny-llama', {str(tiny_models['llama'])!r}, user_visible_name='Tiny')\n"
    )
    write_jsonl(tmp_path / "docs.jsonl", random_documents(13, seed=4))
    return tmp_path


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_gloo_processes_write_the_file_of_one(workdir):
    single = run(workdir, None, "single.parquet")
    assert single.returncode == 0, single.stderr[-2000:]
    double = run(workdir, 2, "double.parquet")
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = pq.read_table(workdir / "single.parquet"), pq.read_table(workdir / "double.parquet")
    exact = [c for c in a.column_names if not c.endswith(("_sum", "_mean", "_freq"))]
    assert_columns_identical(a, b, exact)  # indices, positions, max values, counts
    for column in a.column_names:
        if column.endswith(("_sum", "_mean", "_freq")):
            np.testing.assert_allclose(
                a.column(column).to_numpy(), b.column(column).to_numpy(), rtol=1e-6, err_msg=column
            )
    assert not list(workdir.glob("*.ckpt"))
