"""neuron-explainer (tdb_json) datasets through the app, against a local upstream server that
serves fixture records in the real format, and fails in the ways real upstreams do."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.servers import LOCAL

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"


class Upstream:
    """An aiohttp server on 127.0.0.1 in its own thread; counts requests per path."""

    def __init__(self):
        self.hits: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/{kind}/{layer}/{name}", self.handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.runner = runner
        started.set()
        self.loop.run_forever()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind, layer, name = (request.match_info[k] for k in ("kind", "layer", "name"))
        self.hits[request.path] += 1
        if kind == "slow":
            await asyncio.sleep(3)
        if kind == "down":
            return web.Response(status=500, text="upstream broke")
        if kind == "garbage":
            return web.Response(text='{"dataclass_name": "NeuronRecord", "neuron_id": [')
        path = FIXTURES / layer / name
        if not path.exists():
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=path.read_bytes(), content_type="application/json")

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def client(upstream):
    for kind in ("ok", "slow", "down", "garbage"):
        registry.register_neuron_dataset_metadata(
            f"gpt2-{kind}", "mlp_post_act", f"GPT-2 {kind}", upstream.url(kind)
        )
    settings = ServerSettings(upstream_timeout_s=0.5)
    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client


def test_record_in_neuron_explainer_shape_and_cached(client, upstream):
    response = client.get("/neuron_record/gpt2-ok/mlp_post_act/0/1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["dataset", "maxActivation", "topActivations", "randomSample"]
    published = json.loads((FIXTURES / "0" / "1.json").read_text())
    top = published["most_positive_activation_records"]
    assert body["topActivations"][0]["tokens"] == top[0]["tokens"]
    assert body["maxActivation"] == max(max(r["activations"]) for r in top)
    assert len(body["randomSample"]) == len(published["random_sample"])
    again = client.get("/neuron_record/gpt2-ok/mlp_post_act/0/1")
    assert again.json() == body
    assert upstream.hits["/ok/0/1.json"] == 1  # the second answer came from the cache


def test_post_body_of_neuron_explainer(client):
    response = client.post(
        "/neuron_record",
        json={
            "dst": "mlp_post_act",
            "layerIndex": 5,
            "activationIndex": 42,
            "shortName": "gpt2-ok",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["topActivations"]


def test_missing_record_is_404_naming_the_source(client, upstream):
    response = client.get("/neuron_record/gpt2-ok/mlp_post_act/3/3")
    assert response.status_code == 404
    assert upstream.url("ok") in response.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [("down", 502, "HTTP 500"), ("garbage", 502, "malformed"), ("slow", 504, "timed out")],
)
def test_broken_upstream_is_a_clean_502_or_504_and_the_server_keeps_serving(
    client, upstream, kind, status, words
):
    response = client.get(f"/neuron_record/gpt2-{kind}/mlp_post_act/0/1")
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert upstream.url(kind) in detail and words in detail
    assert client.get("/health").status_code == 200
    assert client.get("/neuron_record/gpt2-ok/mlp_post_act/5/42").status_code == 200
