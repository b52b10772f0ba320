"""`neurons push` and `neurons datasets --hub` on the command line, against the stand-in Hub: a
file pushed, then found and registered by a second machine with an empty NEURONS_HOME (one
`--register` away), whose server answers the same records and example text from the Hub path
alone as a server of the local file."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from activation_server.app import create_app
from activation_server.cli import main
from activation_server.settings import ServerSettings
from registry import register_glu_dataset
from registry.plugins import load_register_modules
from tests.activation_server.test_cli_collate import neurons
from tests.hub_upload import serve_uploads


@pytest.fixture
def upload_hub(monkeypatch, tmp_path, local_hub):
    """The local Hub with its upload endpoints (tests/hub_upload.py), a write token set."""
    yield from serve_uploads(monkeypatch, tmp_path, local_hub)


def record(path: str, client: TestClient) -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_push_command_then_refused_without_allow_existing(upload_hub, tiny_dataset, capsys):
    assert main(["push", str(tiny_dataset["parquet"]), "--repo", "me/cli"]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and "hf://datasets/me/cli" in out
    assert main(["push", str(tiny_dataset["parquet"]), "--repo", "me/cli"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurons: error: hf://datasets/me/cli exists and holds other files")
    assert "--allow-existing" in err and "Traceback" not in err
    assert len(upload_hub.commits) == 1


def test_bad_input_is_one_line_each(upload_hub, tiny_dataset, tmp_path, capsys):
    cases = [
        (["push", str(tmp_path / "none.parquet"), "--repo", "me/x"], "no such file"),
        (["push", str(tiny_dataset["parquet"]), "--repo", "no-owner"], "OWNER/NAME"),
        (["push", str(tiny_dataset["parquet"]), "--repo", "me/x", "--max-shard-mb", "0"],
         "--max-shard-mb must be positive"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("neurons: error:") and message in err and "Traceback" not in err
    assert upload_hub.commits == []


def test_a_second_machine_finds_registers_and_serves_it(
    upload_hub, tiny_dataset, tmp_path, monkeypatch, capsys
):
    assert main(["push", str(tiny_dataset["parquet"]), "--repo", "me/shared"]) == 0
    upload_hub.following["you"] = ["me"]
    capsys.readouterr()
    # elsewhere: nothing kept, nothing registered but what the listing writes
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "empty-home"))
    module = tmp_path / "from_hub.py"
    assert main(["datasets", "--hub", "--following", "you", "--save", str(module)]) == 0
    out = capsys.readouterr().out
    assert "me/shared" in out and "tiny-llama" in out and f"--register {module}" in out
    assert main(["datasets", "--hub", "--author", "me", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["path"] for d in listed] == ["hf://datasets/me/shared"]
    assert listed[0]["n_neurons"] == 24 and listed[0]["top_k"] == 4
    assert main(["datasets", "--hub", "--author", "nobody"]) == 0
    assert "(none)" in capsys.readouterr().out
    # the card names the corpus by its file's name, not by where it lay on the pushing machine:
    # a reader runs beside their copy of it
    assert listed[0]["corpus"].startswith(os.path.basename(str(tiny_dataset["corpus"])))
    assert str(tmp_path) not in module.read_text()
    load_register_modules([str(module)])
    monkeypatch.chdir(os.path.dirname(str(tiny_dataset["corpus"])))
    settings = ServerSettings(max_tokens_per_request=40)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        remote = record("/neuron_record/shared/mlp_post_act/1/5?context=3", client)
    # the local file, with the model the listing registered
    path, corpus = str(tiny_dataset["parquet"]), str(tiny_dataset["corpus"])
    register_glu_dataset("local", path, model="tiny-llama", corpus=corpus)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        local = record("/neuron_record/local/mlp_post_act/1/5?context=3", client)
    assert remote.keys() == local.keys()
    differing = [k for k in local if remote[k] != local[k]]
    assert all(k in ("dataset", "shortName", "short_name", "source") for k in differing), differing
    tokens = [e.get("tokens") for q in remote["quadrants"] for e in q["examples"]["hook_post"]]
    assert any(tokens)  # example text read with the model and corpus the card names


@pytest.mark.slow
def test_the_embedded_model_collated_pushed_and_served_elsewhere(upload_hub, tmp_path, monkeypatch):
    """Done when: SmolLM2's Shakespeare dataset collated and pushed from one machine, and served
    from the Hub path alone by another with an empty NEURONS_HOME (records, text and page)."""
    here = {"NEURONS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0"}
    collated = neurons(
        "collate", "--model", "smollm2-135m", "--corpus", "shakespeare", "--max-docs", "2",
        "--max-tokens", "64", "--engine", "eager", "--out", "smol.parquet",
        cwd=tmp_path, timeout=900, env=here,
    )  # fmt: skip
    assert collated.returncode == 0, collated.stderr[-3000:]
    pushed = neurons("push", "smol.parquet", "--repo", "me/smol", cwd=tmp_path, env=here)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("NEURONS_HOME", str(elsewhere / "home"))
    module = elsewhere / "hub_datasets.py"
    elsewhere.mkdir()
    assert main(["datasets", "--hub", "--author", "me", "--save", str(module)]) == 0
    load_register_modules([str(module)])
    path = "/neuron_record/smol/mlp_post_act/29/100?context=3"
    settings = ServerSettings(max_tokens_per_request=64)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        remote = record(path, client)
        assert client.get("/neuron/smol/mlp_post_act/29/100").status_code == 200
    assert not (elsewhere / "home" / "datasets").exists()  # nothing of the records local
    register_glu_dataset("local", str(tmp_path / "smol.parquet"), model="smollm2-135m",
                         corpus="shakespeare@64")  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        local = record(path.replace("/smol/", "/local/"), client)
    assert remote["quadrants"] == local["quadrants"]
    assert any(e.get("tokens") for q in remote["quadrants"] for e in q["examples"]["hook_post"])
