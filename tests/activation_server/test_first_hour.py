"""A researcher's first hour through the command line, as a new user types it: their own model
folder or Hub id collated without writing a module, every argument checked before the weights
load, every error one line, the file served and browsed in one more command."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from transformers import BloomConfig

import registry
from activation_server.app import create_app
from activation_server.cli import format_table
from activation_server.settings import ServerSettings
from activations.api import register_file
from activations.records.schema import METADATA_KEY
from tests.activation_server.test_cli_collate import neurons
from tests.servers import LOCAL
from tests.tiny import random_documents, write_jsonl


@pytest.fixture
def workdir(tmp_path, tiny_models):
    shutil.copytree(tiny_models["llama"], tmp_path / "my-model")
    write_jsonl(tmp_path / "docs.jsonl", random_documents(20, seed=8))
    return tmp_path


def collate(*args, cwd, env=None):
    return neurons("collate", *args, "--engine", "eager", cwd=cwd, env=env)


def test_a_model_folder_is_collated_served_and_browsed(workdir):
    done = collate("--model", "./my-model", "--corpus", "docs.jsonl", "--out", "mine.parquet",
                   cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = json.loads(pq.read_schema(workdir / "mine.parquet").metadata[METADATA_KEY])
    assert meta["model"] == "my-model" and meta["model_path"] == str(workdir / "my-model")
    # `neurons serve --dataset mine.parquet`: registered for every hook, with model and corpus
    name = register_file(str(workdir / "mine.parquet"))
    assert name == "my-model"
    with TestClient(create_app(ServerSettings()), base_url=LOCAL) as client:
        for dst in ("mlp_pre_act", "mlp_pre_linear", "mlp_swish", "mlp_post_act"):
            path = f"/neuron_record/my-model/{dst}/1/5?context=2"
            body = client.get(path).json()
            examples = [e for q in body["quadrants"] for x in q["examples"].values() for e in x]
            assert examples and all(e["tokens"] for e in examples), body
        (entry,) = [
            d for d in client.get("/datasets").json()
            if d["shortName"] == "my-model" and d["derivedScalarType"] == "mlp_post_act"
        ]  # fmt: skip
        assert entry["corpus"]  # the file's corpus, not null


def test_a_hub_model_id_is_collated(workdir, local_hub):
    local_hub.add_repo("model", "some-lab/tiny-llama", str(workdir / "my-model"))
    env = {"HF_ENDPOINT": local_hub.endpoint, "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(workdir / "hf-home")}  # fmt: skip
    done = collate("--model", "some-lab/tiny-llama", "--corpus", "docs.jsonl", "--out",
                   "hub.parquet", cwd=workdir, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = json.loads(pq.read_schema(workdir / "hub.parquet").metadata[METADATA_KEY])
    assert meta["model"] == "tiny-llama" and meta["model_path"] == "some-lab/tiny-llama"
    assert any("/some-lab/tiny-llama/resolve/" in entry[1] for entry in local_hub.log)


def weightless(folder, config) -> str:
    """A model folder with a config and no weights: any error about weights would mean they
    were being loaded."""
    folder.mkdir()
    config.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "missing.jsonl"], "corpus file 'missing.jsonl' does not exist"),
        (["--corpus", "docs.jsonl", "--layers", "9"], "valid layers are 0-1"),
    ],
)
def test_arguments_are_checked_before_the_weights_load(workdir, tiny_models, args, message):
    folder = weightless(workdir / "config-only", registry_config(tiny_models))
    done = collate("--model", folder, *args, "--out", "x.parquet", cwd=workdir)
    # the folder has no weights: an attempt to load them would be another error than this one
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def registry_config(tiny_models):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_models["llama"])


def test_an_unknown_mlp_layout_is_refused_from_the_config_alone(workdir):
    folder = weightless(workdir / "bloom", BloomConfig(hidden_size=16, n_layer=2, n_head=2))
    done = collate("--model", folder, "--corpus", "docs.jsonl", "--out", "x.parquet", cwd=workdir)
    assert done.returncode == 2, done.stderr
    assert "no MLP in a layout this project knows" in done.stderr
    assert "register_mlp_layout" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_hub_corpus_is_one_line_and_debug_shows_why(workdir):
    args = ["--model", "./my-model", "--corpus", "hf:no/such", "--out", "x.parquet"]
    done = collate(*args, cwd=workdir, env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "corpus hf:no/such could not be loaded" in lines[0]
    assert "HF_HUB_OFFLINE=1" in lines[0]
    debug = collate(*args, "--debug", cwd=workdir, env={"HF_HUB_OFFLINE": "1"})
    assert "Traceback" in debug.stderr


def test_the_datasets_table_fits_a_terminal_and_says_what_is_built(tmp_path):
    done = neurons("datasets", cwd=tmp_path, env={"NEURONS_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 140  # it was 300 wide
    (default,) = [line for line in lines if line.startswith("smollm2-135m") and "post_act" in line]
    assert default.endswith("not built") and "`neurons run` builds the default" in done.stdout
    assert any("olmo-7b" in line and "remote" in line for line in lines)
    assert format_table([{"path": "x" * 300}]).count("…") == 1


def test_datasets_of_an_unknown_model_say_how_to_load_them(tmp_path):
    done = neurons("datasets", "--model", "my-model", cwd=tmp_path)
    assert done.returncode == 1
    assert "no dataset of model 'my-model'" in done.stderr and "--register" in done.stderr


def test_one_call_registers_a_glu_file_for_every_hook(workdir):
    done = collate("--model", "./my-model", "--corpus", "docs.jsonl", "--out", "m.parquet",
                   cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    registered = registry.register_glu_dataset("mine", str(workdir / "m.parquet"))
    assert sorted(d.derived_scalar_type.value for d in registered) == [
        "mlp_post_act", "mlp_pre_act", "mlp_pre_linear", "mlp_swish",
    ]  # fmt: skip
    # a notebook cell run again with another path: replace=True, or unregister first
    with pytest.raises(registry.RegistryConflictError, match="replace=True"):
        registry.register_glu_dataset("mine", str(workdir / "other.parquet"))
    registry.register_glu_dataset("mine", str(workdir / "other.parquet"), replace=True)
    assert registry.unregister_dataset("mine") == 4
