"""neuron-explainer's answers show this server's paths as every other answer does: cut to their
last part (file:// URLs too), unless the server is told to show them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.errors import hide_paths
from activation_server.settings import ServerSettings
from activations.collate import CollateConfig, collate
from tests.tiny import random_documents, write_jsonl

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"
LOCAL = "http://127.0.0.1"


def test_file_urls_are_cut_as_paths_are():
    assert hide_paths(f"in file://{FIXTURES}/5/42.json: gone") == "in …/42.json: gone"
    assert hide_paths("file://localhost/srv/x/data.parquet") == "…/data.parquet"
    assert (
        hide_paths("/srv/x/data.parquet and https://h.org/a/b")
        == "…/data.parquet and https://h.org/a/b"
    )


def node(dst: str, layer: int, index: int, datasets: list[str]) -> dict:
    return {"dst": dst, "layerIndex": layer, "activationIndex": index, "datasets": datasets}


def test_a_records_note_and_dataset_show_no_local_path(tiny_dataset, tmp_path):
    gone = tmp_path / "somewhere" / "deep" / "docs.jsonl"
    gone.parent.mkdir(parents=True)
    write_jsonl(gone, random_documents(6, seed=2))
    registry.register_model("tiny-llama", str(tiny_dataset["model"]))
    out = tmp_path / "moved.parquet"
    config = CollateConfig(
        model="tiny-llama", out=str(out), corpus=str(gone), top_k=2, engine="eager",
        progress=False,
    )  # fmt: skip
    collate(config)
    gone.unlink()  # the corpus moved away: the record's note says so, naming it
    registry.register_neuron_dataset_metadata(
        "tiny-moved", "mlp_post_act", "Tiny, corpus moved", str(out), format="glu_parquet",
        model="tiny-llama", corpus=str(gone),
    )  # fmt: skip
    url = f"file://{FIXTURES}"
    registry.register_neuron_dataset_metadata("tdb-url", "mlp_pre_act", "TDB by URL", url)
    for expose in (False, True):
        settings = ServerSettings(max_tokens_per_request=40, expose_paths=expose)
        with TestClient(create_app(settings), base_url=LOCAL) as client:
            body = client.post("/neuron_record", json=node("mlp_post_act", 1, 3, ["tiny-moved"]))
            assert body.status_code == 200, body.text
            note = body.json()["note"]
            assert "docs.jsonl" in note  # the note says what is missing
            assert (str(tmp_path) in note) == expose, note
            assert body.json()["dataset"] == "tiny-moved"  # a local dataset is named
            by_url = client.post("/neuron_record", json=node("mlp_pre_act", 5, 42, [url]))
            assert by_url.status_code == 200 and by_url.json()["dataset"] == "tdb-url"
            missing = client.post("/neuron_record", json=node("mlp_pre_act", 5, 7, ["tdb-url"]))
            assert missing.status_code == 404
            assert (str(FIXTURES) in missing.text) == expose, missing.text
            listed = {d["shortName"]: d for d in client.get("/datasets").json()}
            shown = listed["tdb-url"]["neuronDatasetPath"]
            assert shown == (url if expose else "…/collated-activations")
