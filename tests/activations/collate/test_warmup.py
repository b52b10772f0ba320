"""No silent waits: torch.compile's first compilation is said before it starts and timed, and
`--engine auto` runs eager where a job is too small to repay compiling."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from activations.collate import engines, warmup
from activations.collate.collator import Collator
from activations.records.schema import GLU_LAYOUT
from tests.activation_server.test_cli_collate import neurons
from tests.tiny import random_documents, write_jsonl


@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """As on a machine without gcc (the kernel's choice is tested with the kernel)."""
    monkeypatch.setattr(engines, "kernel_fits", lambda layout, model: False)
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))


def test_auto_weighs_the_compilation_against_the_job(no_kernel):
    model = torch.nn.Linear(2, 2)
    seconds = warmup.expected_seconds()
    assert seconds == warmup.FIRST_GUESS_S  # nothing timed in this home yet
    pays = int(seconds / (warmup.EAGER_EXTRA_NS * 1e-9)) + 100
    assert engines.choose_engine("auto", GLU_LAYOUT, model, pays) == "compiled"
    assert engines.choose_engine("auto", GLU_LAYOUT, model, pays // 2) == "eager"
    assert engines.choose_engine("auto", GLU_LAYOUT, model, None) == "compiled"  # unknown: large
    assert engines.choose_engine("compiled", GLU_LAYOUT, model, 10) == "compiled"  # as asked


def test_the_first_compilation_is_said_timed_and_remembered(
    no_kernel, tiny_models, capsys, monkeypatch
):
    monkeypatch.setattr(warmup, "_compiled_here", False)  # as in a fresh process
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    collator = Collator(model, top_k=2, engine="compiled")
    ids = torch.tensor([[2, 5, 6, 7]])
    collator.add_batch(ids, torch.ones_like(ids), torch.tensor([0]))
    said = capsys.readouterr().err
    assert "compiling the reduction for this model (first run only, ~45 s)" in said
    assert "compiled in" in said
    assert warmup.expected_seconds() != warmup.FIRST_GUESS_S  # the time it took, kept
    collator.add_batch(ids, torch.ones_like(ids), torch.tensor([1]))
    again = Collator(model, top_k=2, engine="compiled")  # another layer set, same process
    again.add_batch(ids, torch.ones_like(ids), torch.tensor([0]))
    assert "compiling" not in capsys.readouterr().err  # once a process


def test_a_small_job_on_the_command_line_runs_eager_without_waiting(tiny_models, tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", random_documents(20, seed=1))
    args = ["--model", str(tiny_models["llama"]), "--corpus", "docs.jsonl", "--out", "a.parquet"]
    env = {"NEURONS_HOME": str(tmp_path / "home")}
    done = neurons("collate", *args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "compiling" not in done.stderr
    asked = neurons(
        "collate", *args[:-1], "b.parquet", "--engine", "compiled", cwd=tmp_path, env=env
    )
    assert asked.returncode == 0 and "compiling the reduction" in asked.stderr
