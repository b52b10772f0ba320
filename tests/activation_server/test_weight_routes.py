"""Weight views over HTTP: a neuron's at once, the model's table computed once in the background
(its class counts say how far it has come meanwhile), answered as the Python API answers them,
in the record with ?weights=true, and as class counts."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.api import Session
from tests.activation_server.conftest import register_tiny


def until_ready(client, path: str) -> dict:
    for _ in range(300):
        answer = client.get(path)
        if answer.status_code != 503:
            assert answer.status_code == 200, answer.text
            return answer.json()
        time.sleep(0.1)
    raise AssertionError(f"{path} still computing")


@pytest.fixture
def fresh_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))


def classes_ready(client, model: str) -> dict:
    for _ in range(300):
        counts = client.get(f"/classes/{model}").json()
        if counts["state"] == "ready":
            return counts
        assert counts["state"] == "computing" and counts["layersTotal"] in (None, 2)
        assert "computing the weight views" in counts["note"]
        time.sleep(0.1)
    raise AssertionError(f"the classes of {model} still computing")


def test_a_neurons_view_is_answered_at_once_and_the_table_follows(client, fresh_home):
    first = client.get("/weights/tiny-llama/0/5")
    assert first.status_code == 200, first.text  # no wait for the model's table
    got = first.json()
    assert got["ioClass"] and len(got["promotes"]) == 10 and got["promotes"][0]["token"]
    assert got["folded"] and got["raw"]["ioClass"]
    counts = classes_ready(client, "tiny-llama")
    assert counts["layers"] == [0, 1] and counts["layersDone"] is None
    assert sum(c[0] for c in counts["classes"].values()) == counts["neuronsPerLayer"] == 24
    assert client.get("/weights/tiny-llama/0/5").json() == got  # the table's row: the same
    want = Session().weights("tiny-llama", 0, 5)  # reads the file the server wrote
    assert got == want.model_dump(mode="json", by_alias=True)
    record = until_ready(client, "/neuron_record/tiny-llama/mlp_post_act/0/5?weights=true")
    assert record["weights"] == got and record["weightsNote"] is None
    plain = client.get("/neuron_record/tiny-llama/mlp_post_act/0/5").json()
    assert plain["weights"] is None  # only when asked for


def test_a_record_asked_for_weights_has_them_before_the_table(client, fresh_home):
    record = client.get("/neuron_record/tiny-llama/mlp_post_act/1/3?weights=true").json()
    assert record["weights"]["neuron"] == 3 and record["weightsNote"] is None
    assert record["quadrants"]
    assert client.get("/weights/tiny-llama/1/3").json() == record["weights"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/weights/tiny-llama/7/0", 404, "valid layers are 0-1"),
        ("/weights/tiny-llama/0/99", 404, "valid neurons are 0-23"),
        ("/weights/no-such/0/0", 404, "tiny-llama"),
        ("/weights/tiny-llama/x/0", 422, "digits"),
        ("/classes/no-such", 404, "tiny-llama"),
    ],
)
def test_bad_weight_requests_say_what_is_valid(client, path, status, says):
    until_ready(client, "/weights/tiny-llama/0/0")
    answer = client.get(path)
    assert answer.status_code == status and says in str(answer.json()["detail"])


def test_a_model_over_the_budget_is_said_not_computed(tiny_dataset, fresh_home):
    register_tiny(tiny_dataset)
    settings = ServerSettings(max_model_gb=1e-9)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        answer = client.get("/weights/tiny-llama/0/0")
        assert answer.status_code == 502 and "over the" in answer.json()["detail"]
        counts = client.get("/classes/tiny-llama")
        assert counts.status_code == 502
