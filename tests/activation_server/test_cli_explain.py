"""`neurons explain` and `neurons score` on a GLU dataset of a tiny Llama, a tiny chat model
explaining in process: files in neuron-explainer's layout, a summary, resumed runs, Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import registry
from activation_server.cli import main
from activations.explanations import service as service_module
from registry.explanations import register_explainer
from tests.activation_server.conftest import register_tiny
from tests.tiny_chat import make_tiny_chat_model


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat")
    return {
        "chat": make_tiny_chat_model(root / "chat", seed=4),
        "plain": make_tiny_chat_model(root / "plain", chat_template=False),
    }


@pytest.fixture
def home(tiny_dataset, chat_models, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    register_tiny(tiny_dataset)
    registry.register_model("tiny-chat", str(chat_models["chat"]))
    registry.register_model("plain-lm", str(chat_models["plain"]))
    register_explainer("tiny", "in_process", "tiny-chat")
    register_explainer("plain", "in_process", "plain-lm")
    return tmp_path / "home" / "explanations" / "tiny-llama" / "mlp_post_act"


ARGS = ["explain", "--dataset", "tiny-llama", "--explainer", "tiny", "--candidates", "2"]


def files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_explain_writes_each_neuron_resumes_and_summarises(home, capsys):
    assert main([*ARGS, "--layers", "1", "--neurons", "0-3"]) == 0
    out = capsys.readouterr().out
    assert "4 neurons, 0 already explained" in out
    # neuron 0's gate and neuron 1's in are all 0 (tests/tiny.py): never active
    assert "skipped: layer 1 neuron 0" in out and "never active" in out
    assert "skipped: layer 1 neuron 1" in out
    assert "2 neurons explained" in out and "best score per neuron: mean" in out
    written = files(home)
    assert {"1/2.jsonl", "1/3.jsonl"} <= set(written) and "1/0.jsonl" not in written
    assert any(name.startswith("quadrants/") for name in written)
    assert not [name for name in written if name.endswith(".tmp")]
    assert main([*ARGS, "--layers", "1", "--neurons", "2-3"]) == 0
    assert "2 neurons, 2 already explained" in capsys.readouterr().out
    assert files(home) == written


def test_ctrl_c_keeps_whole_files_and_the_next_run_resumes(home, capsys, monkeypatch):
    real = service_module.Explanations.explain
    seen = []

    async def interrupted(self, metadata, layer, neuron, *args, **kwargs):
        seen.append(neuron)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return await real(self, metadata, layer, neuron, *args, **kwargs)

    monkeypatch.setattr(service_module.Explanations, "explain", interrupted)
    assert main([*ARGS, "--layers", "1", "--neurons", "4-5"]) == 130
    assert "the next run resumes" in capsys.readouterr().out
    assert (home / "1" / "4.jsonl").exists() and not (home / "1" / "5.jsonl").exists()
    assert not [p for p in home.rglob("*.tmp")]
    monkeypatch.setattr(service_module.Explanations, "explain", real)
    assert main([*ARGS, "--layers", "1", "--neurons", "4-5"]) == 0
    assert "2 neurons, 1 already explained" in capsys.readouterr().out
    assert (home / "1" / "5.jsonl").exists()


def test_a_random_sample_and_a_score(home, capsys):
    out_dir = str(home.parent / "s")
    assert main([*ARGS, "--sample", "2", "--seed", "1", "--out", out_dir, "--baseline"]) == 0
    out = capsys.readouterr().out
    assert "2 neurons, 0 already explained" in out
    assert "top-tokens baseline, scored the same way:" in out
    score = ["score", "--dataset", "tiny-llama", "--explainer", "tiny", "--layer", "1"]
    before = torch.get_num_threads()
    try:
        assert main([*score, "--neuron", "3", "--text", "w5 and w7", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "score " in capsys.readouterr().out
    assert "w5 and w7" in (home / "1" / "3.jsonl").read_text()


def test_a_model_without_a_chat_template_is_named(home, capsys):
    args = ["explain", "--dataset", "tiny-llama", "--explainer", "plain", "--layers", "1"]
    assert main([*args, "--neurons", "2"]) == 2
    assert "'plain-lm' has no chat template" in capsys.readouterr().err
    assert not home.exists()


def test_a_thread_count_below_one_is_refused(home, capsys):
    assert main([*ARGS, "--layers", "1", "--neurons", "2", "--threads", "0"]) != 0
    assert "--threads 0: give a positive number of threads" in capsys.readouterr().err
    assert not home.exists()
