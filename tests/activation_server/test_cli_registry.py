"""The `neurons datasets` / `neurons models` commands, through the installed entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = """
from registry import register_model, register_neuron_dataset_metadata

register_model("tiny-llama", "{folder}", user_visible_name="Tiny Llama")
register_neuron_dataset_metadata(
    short_name="tiny-llama",
    derived_scalar_type="mlp_post_act",
    user_visible_name="Tiny Llama - MLP neurons",
    neuron_dataset_path="{folder}/tiny.parquet",
    format="glu_parquet",
    model="tiny-llama",
)
"""


def neurons(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "activation_server.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(Path(__file__).parents[2])},
        timeout=120,
    )


def test_datasets_table_lists_the_registry():
    result = neurons("datasets")
    assert result.returncode == 0, result.stderr
    assert "short_name" in result.stdout.splitlines()[0]
    assert "gpt2-small_ae-resid-delta-attn-v4" in result.stdout
    wide = neurons("datasets", "--wide").stdout  # paths in full only when asked
    assert "hf://datasets/sjgerstner/OLMo-7B-0424-hf_neuron-activations" in wide


def test_datasets_json_filters():
    result = neurons("datasets", "--json", "--model", "olmo-7b")
    rows = json.loads(result.stdout)
    assert {r["derivedScalarType"] for r in rows} == {
        "mlp_post_act",
        "mlp_pre_act",
        "mlp_pre_linear",
        "mlp_swish",
    }


@pytest.mark.parametrize("via", ["flag", "env"])
def test_register_module_adds_model_and_dataset(tmp_path, via):
    (tmp_path / "my_models.py").write_text(PLUGIN.format(folder=tmp_path))
    if via == "flag":
        models = neurons("models", "--json", "--register", "my_models", cwd=tmp_path)
        datasets = neurons("datasets", "--json", "--register", "my_models", cwd=tmp_path)
    else:
        env = {"NEURONS_REGISTER": "my_models"}
        models = neurons("models", "--json", cwd=tmp_path, env=env)
        datasets = neurons("datasets", "--json", cwd=tmp_path, env=env)
    assert models.returncode == 0, models.stderr
    assert "tiny-llama" in {m["shortName"] for m in json.loads(models.stdout)}
    added = [d for d in json.loads(datasets.stdout) if d["shortName"] == "tiny-llama"]
    assert added and added[0]["format"] == "glu_parquet"


def test_register_missing_module_is_a_clear_error(tmp_path):
    result = neurons("datasets", "--register", "no_such_module", cwd=tmp_path)
    assert result.returncode == 2
    assert "could not import register module 'no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr


def test_register_module_with_conflict_is_a_clear_error(tmp_path):
    (tmp_path / "bad.py").write_text(
        "from registry import register_model\n"
        "register_model('olmo-7b', 'someone/else', user_visible_name='x')\n"
    )
    result = neurons("models", "--register", "bad", cwd=tmp_path)
    assert result.returncode == 2
    assert "already registered with different content" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "has a syntax error (bad_module.py, line 1)"),
        ("raise RuntimeError('no licence')\n", "failed: RuntimeError: no licence"),
        ("import surely_not_installed_pkg\n", "needs the package 'surely_not_installed_pkg'"),
        ("from registry import register_model\nregister_model('m', 'o/m')\n"
         "register_model('m', 'o/other')\n", "already registered with different content"),
    ],
)  # fmt: skip
def test_a_register_module_that_fails_is_one_line_and_exit_2(tmp_path, source, message):
    (tmp_path / "bad_module.py").write_text(source)
    result = neurons("models", "--register", "bad_module", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_register_file_is_loaded_by_its_path(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "mine.py").write_text(PLUGIN.format(folder=tmp_path))
    for given in (str(folder / "mine.py"), "./elsewhere/mine.py"):
        result = neurons("models", "--json", "--register", given, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "tiny-llama" in {m["shortName"] for m in json.loads(result.stdout)}
    missing = neurons("models", "--register", "./nope.py", cwd=tmp_path)
    assert missing.returncode == 2 and "register file './nope.py' does not exist" in missing.stderr
