"""A record answered once is sent again as the same bytes without asking its source, while
its registry entry and files are unchanged; the Host check and CORS apply to it as to any
answer, and answers that say something went wrong are made anew."""

from __future__ import annotations

import http.client
import json
import re

import pytest

import registry
from activation_server.app import create_app
from activation_server.routes import records
from activation_server.settings import ServerSettings
from activations.sources import glu_source
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer

SETTINGS = ServerSettings(max_tokens_per_request=40)
PATH = "/neuron_record/tiny-llama/mlp_post_act/1/5"


@pytest.fixture
def server(tiny_dataset):
    register_tiny(tiny_dataset)
    with LiveServer(create_app(SETTINGS), SETTINGS) as live:
        yield live


@pytest.fixture
def asked(monkeypatch) -> list[tuple]:
    """Every record a GLU source is asked for."""
    calls: list[tuple] = []
    real = glu_source.GluDatasetSource.record

    async def counted(self, layer, neuron, query):
        calls.append((self.metadata.short_name, layer, neuron))
        return await real(self, layer, neuron, query)

    monkeypatch.setattr(glu_source.GluDatasetSource, "record", counted)
    return calls


def get(server, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_a_warm_answer_is_the_same_bytes_without_asking_the_source(server, asked):
    status, first, _ = get(server, PATH)
    assert status == 200 and len(asked) == 1
    for _ in range(3):
        status, again, headers = get(server, PATH)
        assert status == 200 and again == first
        assert headers["content-type"] == "application/json"
    assert len(asked) == 1
    # another query is another answer
    assert get(server, PATH + "?hooks=all")[0] == 200 and len(asked) == 2


def test_a_changed_registry_entry_is_answered_anew(server, asked, tiny_dataset, tmp_path):
    status, first, _ = get(server, PATH)
    assert status == 200
    registry.register_neuron_dataset_metadata(
        "tiny-llama", "mlp_post_act", "Renamed", str(tiny_dataset["parquet"]),
        format="glu_parquet", model="tiny-llama", replace=True,
    )  # fmt: skip
    status, again, _ = get(server, PATH)
    assert status == 200 and len(asked) == 2
    assert json.loads(again)["dataset"]["userVisibleName"] == "Renamed"
    registry.unregister_dataset("tiny-llama", "mlp_post_act")
    status, gone, _ = get(server, PATH)
    assert status == 404 and "tiny-llama" in json.loads(gone)["detail"]


def test_the_host_check_and_cors_apply_to_warm_answers(server):
    assert get(server, PATH)[0] == 200
    status, body, _ = get(server, PATH, {"Host": "evil.example"})
    assert status == 400 and b"is not served here" in body
    origin = "http://localhost:5173"
    status, _, headers = get(server, PATH, {"Origin": origin})
    assert status == 200 and headers["access-control-allow-origin"] == origin
    status, _, headers = get(server, PATH, {"Origin": "https://elsewhere.example"})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_answers_that_say_what_went_wrong_are_made_anew(server, asked, tiny_dataset):
    registry.register_model("broken", "/nonexistent/model")
    registry.register_neuron_dataset_metadata(
        "no-model", "mlp_post_act", "N", str(tiny_dataset["parquet"]), format="glu_parquet",
        model="broken",
    )  # fmt: skip
    path = "/neuron_record/no-model/mlp_post_act/1/5?context=2"
    for _ in range(2):
        status, body, _ = get(server, path)
        assert status == 200 and json.loads(body)["contextNote"]
    assert len(asked) == 2
    for _ in range(2):  # errors neither
        assert get(server, "/neuron_record/tiny-llama/mlp_post_act/1/99999")[0] == 404
    assert len(asked) == 4


def test_a_plain_record_is_kept_as_its_answer_alone(server, monkeypatch):
    """The answer's bytes are kept; the source is asked not to keep the record's models too.
    Records with text are kept by the source (their answers are kept only where complete)."""
    queries = []
    real = glu_source.GluDatasetSource.record

    async def seen(self, layer, neuron, query):
        queries.append(query)
        return await real(self, layer, neuron, query)

    monkeypatch.setattr(glu_source.GluDatasetSource, "record", seen)
    status, first, _ = get(server, PATH + "?hooks=all")
    assert status == 200 and [q.kept for q in queries] == [False]
    assert get(server, PATH + "?hooks=all")[1] == first and len(queries) == 1  # the bytes
    status, _, _ = get(server, PATH + "?context=2")
    assert status == 200 and [q.kept for q in queries] == [False, True]


def test_a_plain_record_is_answered_before_the_router_as_the_route_answers_it(
    server, tiny_dataset, monkeypatch
):
    """A plain record GET (no query) is made by the records route's own function without the
    router: the same bytes, and the same errors, as the route gives."""
    paths = [
        PATH,
        "/neuron_record/tiny-llama/mlp_post_act/0/0",
        "/neuron_record/tiny-llama/mlp_post_act/1/99999",  # past the layer's neurons
        "/neuron_record/tiny-llama/mlp_post_act/9/0",  # past the layers
        "/neuron_record/nowhere/mlp_post_act/1/5",  # not registered
        "/neuron_record/tiny-llama/mlp_post_act/01/005",  # leading zeros
        "/neuron_record/tiny-llama/mlp_post_act/1/123456789012",  # past the route's bound
    ]
    before_router = [get(server, path)[:2] for path in paths]
    monkeypatch.setattr(records, "PLAIN_RECORD", re.compile(r"(?!)"))  # matches nothing
    with LiveServer(create_app(SETTINGS), SETTINGS) as routed:
        by_route = [get(routed, path)[:2] for path in paths]
    assert [status for status, _ in before_router] == [200, 200, 404, 404, 404, 200, 422]
    assert before_router == by_route
