"""Collation on a CUDA device writes the records of the CPU; skipped where there is no GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.activations.reference import assert_same_up_to_ties
from tests.tiny import random_documents, write_jsonl

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: run on a machine with a GPU"
)
ROOT = Path(__file__).parents[3]
PYTHONPATH = os.environ.get("PYTHONPATH", "")
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun"
)


@pytest.fixture
def workdir(tmp_path, tiny_models) -> Path:
    (tmp_path / "tiny.py").write_text(
        "from registry import register_model\n"
        f"register_model('tiny-llama', {str(tiny_models['llama'])!r}, user_visible_name='Tiny')\n"
        f"register_model('tiny-olmo', {str(tiny_models['olmo'])!r}, user_visible_name='Tiny')\n"
    )
    write_jsonl(tmp_path / "docs.jsonl", random_documents(37, seed=5))
    return tmp_path


def collate(workdir: Path, model: str, out: str, *extra: str, torchrun: bool = False):
    args = [
        "--register", "tiny", "--model", model, "--corpus", "docs.jsonl",
        "--batch-size", "4", "--top-k", "8", "--out", out, *extra,
    ]  # fmt: skip
    if torchrun:
        command = [TORCHRUN, "--standalone", "--nproc-per-node=1", "-m", "activations.collate"]
        command += [*args, "--distributed"]
    else:
        command = [sys.executable, "-m", "activation_server.cli", "collate", *args]
    done = subprocess.run(
        command,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(workdir), PYTHONPATH])},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return pq.read_table(workdir / out)


def assert_same_records(cpu, gpu, atol: float) -> None:
    for column in cpu.column_names:
        if column.endswith("_freq") or column in ("layer", "neuron"):
            np.testing.assert_array_equal(cpu[column].to_numpy(), gpu[column].to_numpy(), column)
        elif column.endswith("_mean"):
            np.testing.assert_allclose(
                cpu[column].to_numpy(), gpu[column].to_numpy(), rtol=1e-3, atol=atol, err_msg=column
            )
    assert_same_up_to_ties(cpu.to_pylist(), gpu.to_pylist(), atol=atol)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-olmo"])
def test_compiled_cuda_collation_gives_the_cpu_records(workdir, model):
    cpu = collate(workdir, model, "cpu.parquet", "--engine", "eager")
    gpu = collate(workdir, model, "gpu.parquet", "--device", "cuda")
    assert_same_records(cpu, gpu, atol=1e-4)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_with_nccl_gives_the_single_process_records(workdir):
    single = collate(workdir, "tiny-llama", "single.parquet", "--device", "cuda")
    ranked = collate(workdir, "tiny-llama", "nccl.parquet", "--device", "cuda", torchrun=True)
    assert_same_records(single, ranked, atol=1e-6)


def test_bfloat16_collation_keeps_float32_accumulators(workdir):
    full = collate(workdir, "tiny-llama", "f32.parquet", "--device", "cuda")
    half = collate(workdir, "tiny-llama", "bf16.parquet", "--device", "cuda", "--dtype", "bfloat16")
    assert half.schema.equals(full.schema, check_metadata=False)
    np.testing.assert_array_equal(  # quadrant counts may move by a sign flip of a tiny value
        np.isnan(full["gate+_in+_hook_post_mean"].to_numpy()),
        np.isnan(half["gate+_in+_hook_post_mean"].to_numpy()),
    )
    top = np.array([v[0] for v in full["gate+_in+_hook_post_max_values"].to_pylist()])
    top_half = np.array([v[0] for v in half["gate+_in+_hook_post_max_values"].to_pylist()])
    np.testing.assert_allclose(top_half, top, rtol=5e-2, atol=5e-2)
