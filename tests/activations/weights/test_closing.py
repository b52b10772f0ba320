"""Closing while a model's weight table is computed: the table stops after its layer and its
thread is waited for. A thread still inside torch when the interpreter exits aborts the process
("terminate called without an active exception"), as a script that asks for one neuron's view
and ends at once did."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, LlamaConfig

import registry
from activations.api import Session
from tests.tiny import word_tokenizer

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    """Twelve layers and a 20,000-token unembedding: its table takes long enough to be under
    way when the script ends."""
    folder = tmp_path_factory.mktemp("wide") / "model"
    config = LlamaConfig(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=12, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=20_000, pad_token_id=0, bos_token_id=2, eos_token_id=2,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


def test_a_script_that_ends_while_the_table_is_computed_exits_cleanly(wide_model, tmp_path):
    script = textwrap.dedent(f"""
        import registry
        from activations import api
        registry.register_model("wide", {str(wide_model)!r})
        view = api.default_session().weights("wide", 1, 5)  # starts the model's table
        print("class:", view.io_class)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEURONS_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "class:" in done.stdout
    assert "terminate called" not in done.stderr


def test_closing_stops_the_table_and_waits_for_its_thread(wide_model, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    registry.register_model("wide", str(wide_model))
    session = Session()
    session.weights("wide", 1, 5)
    (build,) = session.weight_views._builds.values()
    assert build.thread is not None and build.thread.is_alive()
    session.close()
    assert not build.thread.is_alive()
    assert build.done.is_set()
    if build.failed is not None:  # stopped before its last layer: nothing half-written is kept
        assert "were stopped" in build.failed and build.layers_done < 12
        assert not list((tmp_path / "home").glob("weights/*"))
