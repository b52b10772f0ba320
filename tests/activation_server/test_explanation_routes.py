"""TDB's explanation routes as its neuron viewer calls them (bodies replayed from its client:
readRequests.ts, explainerRequests.ts), over a neuron-explainer dataset and a GLU one, with a
tiny chat model explaining in process; errors; one computation for two requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from registry.explanations import register_explainer
from tests.activation_server.conftest import register_tiny
from tests.tiny_chat import make_tiny_chat_model

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return make_tiny_chat_model(tmp_path_factory.mktemp("chat"), seed=2)


@pytest.fixture
def client(tiny_dataset, chat_model, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    register_tiny(tiny_dataset)
    registry.register_model("tiny-chat", str(chat_model))
    register_explainer("tiny", "in_process", "tiny-chat")
    registry.register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "TDB", str(FIXTURES))
    with TestClient(create_app(ServerSettings()), base_url="http://127.0.0.1") as test_client:
        yield test_client


def node(layer: int, index: int, datasets: list[str], **more) -> dict:
    """The viewer's NodeIdAndDatasets (getNodeIdAndDatasets)."""
    body = {"dst": "mlp_post_act", "layerIndex": layer, "activationIndex": index}
    return {**body, "datasets": datasets, **more}


def existing(client, layer: int, index: int, neuron_dataset: str) -> list[dict]:
    """readExistingExplanations: explanationDatasets empty, neuronDataset the short name."""
    answer = client.post(
        "/existing_explanations",
        json={
            "dst": "mlp_post_act",
            "layerIndex": layer,
            "activationIndex": index,
            "explanationDatasets": [],
            "neuronDataset": neuron_dataset,
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_explain_score_store_and_existing_explanations_of_a_tdb_dataset(client, tmp_path):
    assert existing(client, 0, 1, "tdb-fixture") == []
    explained = client.post("/explain", json=node(0, 1, ["tdb-fixture"], explainer="tiny"))
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["dataset"] == "tdb-fixture" and 1 <= len(body["explanations"]) <= 3
    stored = existing(client, 0, 1, "tdb-fixture")
    assert [e["explanation"] for e in stored] == [
        e["explanation"] for e in body["scoredExplanations"]
    ]
    assert {e["datasetName"] for e in stored} == {"tdb-fixture-explanations"}
    # neuron-explainer's layout, under $NEURONS_HOME
    file = tmp_path / "home/explanations/tdb-fixture/mlp_post_act/0/1.jsonl"
    line = json.loads(file.read_text())
    assert line["dataclass_name"] == "NeuronSimulationResults"
    assert line["neuron_id"] == {"dataclass_name": "NeuronId", "layer_index": 0, "neuron_index": 1}
    # explained again: the stored explanations, nothing computed or written
    before = file.stat().st_mtime_ns
    again = client.post("/explain", json=node(0, 1, ["tdb-fixture"], explainer="tiny")).json()
    assert again["explanations"] == body["explanations"] and file.stat().st_mtime_ns == before

    # the viewer's "Score explanation" box: scoreExplanation(activeNode, text, maxSequences=2)
    scored = client.post(
        "/score", json=node(0, 1, ["tdb-fixture"], explanation="kings", maxSequences=2)
    )
    assert scored.status_code == 200, scored.text
    result = scored.json()
    assert result["datasetPath"] == "tdb-fixture" and isinstance(result["score"], float)
    assert len(result["sequences"]) == 2
    before = file.stat().st_mtime_ns
    cached = client.post("/score", json=node(0, 1, ["tdb-fixture"], explanation="kings"))
    assert cached.json()["score"] == result["score"] and file.stat().st_mtime_ns == before
    texts = [e["explanation"] for e in existing(client, 0, 1, "tdb-fixture")]
    assert texts[-1] == "kings"
    # the same through the named explanation dataset
    named = client.post(
        "/existing_explanations",
        json={
            "dst": "mlp_post_act",
            "layerIndex": 0,
            "activationIndex": 1,
            "explanationDatasets": ["tdb-fixture-explanations"],
        },
    )
    assert [e["explanation"] for e in named.json()] == texts


def test_a_glu_neuron_is_explained_per_quadrant_and_overall(client):
    explained = client.post("/explain", json=node(1, 5, ["tiny-llama"], explainer="tiny"))
    assert explained.status_code == 200, explained.text
    scored = explained.json()["scoredExplanations"]
    quadrants = {e["quadrant"] for e in scored}
    assert None in quadrants and len(quadrants) >= 2
    stored = existing(client, 1, 5, "tiny-llama")
    assert {(e["quadrant"], e["explanation"]) for e in stored} == {
        (e["quadrant"], e["explanation"]) for e in scored
    }
    views = client.get("/explanations/tiny-llama/mlp_post_act/1/5").json()
    assert {v["quadrant"] for v in views} == quadrants
    first = views[0]["explanations"][0]
    assert first["sequences"] and len(first["sequences"][0]["tokens"]) == len(
        first["sequences"][0]["expectedActivations"]
    )
    quadrant = next(q for q in quadrants if q)
    one = client.post(
        "/score", json=node(1, 5, ["tiny-llama"], explanation="w1 words", quadrant=quadrant)
    )
    assert one.status_code == 200, one.text
    found = client.get("/search/explanations", params={"q": "w1 words"}).json()
    assert found["hits"][0]["explanation"] == "w1 words"
    assert found["hits"][0]["page"] == "/neuron/tiny-llama/mlp_post_act/1/5"
    assert found["hits"][0]["quadrant"] == quadrant


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"explanation": ""}, 422, "1 to 500"),
        ({"explanation": "x" * 501}, 422, "1 to 500"),
        ({"explanation": "ok", "explainer": "nope"}, 404, "Unknown explainer"),
        ({"explanation": "ok", "quadrant": "gate0"}, 422, "unknown quadrant"),
    ],
)
def test_bad_scores_are_refused(client, change, status, words):
    answer = client.post("/score", json=node(0, 1, ["tdb-fixture"], **change))
    assert answer.status_code == status and words in answer.text


def test_existing_explanations_needs_exactly_one_source(client):
    body = {"dst": "mlp_post_act", "layerIndex": 0, "activationIndex": 1}
    for extra in ({}, {"explanationDatasets": ["x"], "neuronDataset": "tdb-fixture"}):
        answer = client.post("/existing_explanations", json={**body, **extra})
        assert answer.status_code == 400 and "Exactly one" in answer.text
    unknown = client.post("/existing_explanations", json={**body, "explanationDatasets": ["/etc"]})
    assert unknown.status_code == 404 and "no explanation dataset" in unknown.text


def test_a_neuron_never_active_is_a_422(client, tmp_path):
    quiet = tmp_path / "quiet" / "0"
    quiet.mkdir(parents=True)
    record = json.loads((FIXTURES / "0" / "1.json").read_text())
    for r in record["most_positive_activation_records"] + record["random_sample"]:
        r["activations"] = [-abs(a) - 1 for a in r["activations"]]
    (quiet / "1.json").write_text(json.dumps(record))
    registry.register_neuron_dataset_metadata("quiet", "mlp_post_act", "Q", str(quiet.parent))
    answer = client.post("/explain", json=node(0, 1, ["quiet"], explainer="tiny"))
    assert answer.status_code == 422 and "never active" in answer.text
    assert not (tmp_path / "home" / "explanations" / "quiet").exists()


def test_two_requests_to_explain_one_neuron_are_one_computation(client):
    services = client.app.state.services
    calls = []
    real = services.explanations.backend

    def counting(explainer=None):
        backend = real(explainer)
        complete = backend.complete

        async def counted(*args, **kwargs):
            calls.append(args)
            return await complete(*args, **kwargs)

        backend.complete = counted
        return backend

    services.explanations.backend = counting
    metadata = registry.resolve_dataset("tdb-fixture", "mlp_post_act")

    async def both():
        return await asyncio.gather(
            *(services.explanations.explain(metadata, 5, 42, explainer="tiny") for _ in range(2))
        )

    first, second = client.portal.call(both)
    assert len(calls) == 1 and first is second


def test_an_openai_compatible_explainer_and_its_failures(client, tmp_path):
    from tests.openai_standin import StandinServer, _free_port

    with StandinServer() as server:
        register_explainer("remote", "openai", "m", base_url=server.base_url)
        answer = client.post("/explain", json=node(5, 42, ["tdb-fixture"], explainer="remote"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["explanations"][0].startswith("kings and queens")
        assert server.state["completions"]  # scored with echo + logprobs
        register_explainer("slow", "openai", "m", base_url=server.base_url, timeout_s=0.3,
                           max_retries=0)  # fmt: skip
        server.state["delay_s"] = 1.5
        body = node(5, 42, ["tdb-fixture"], explanation="a", explainer="slow")
        hung = client.post("/score", json=body)
        server.state["delay_s"] = 0
    assert hung.status_code == 504, hung.text
    assert "did not answer within 0.3 s" in hung.text
    register_explainer("dead", "openai", "m", base_url=f"http://127.0.0.1:{_free_port()}/v1",
                       max_retries=0)  # fmt: skip
    dead = client.post("/explain", json=node(0, 1, ["tdb-fixture"], explainer="dead"))
    assert dead.status_code == 502 and "cannot be reached" in dead.text
    assert not (tmp_path / "home/explanations/tdb-fixture/mlp_post_act/0").exists()
