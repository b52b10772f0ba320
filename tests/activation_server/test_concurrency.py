"""Concurrent clients over real HTTP (uvicorn on a loopback port): live requests and records with
example values overlap on one model and every answer equals the same request on an idle server;
hung upstreams fill only their own pool and answer 504 in time; gone clients' work is dropped."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.compare import same
from tests.servers import HangingServer, LiveServer

SETTINGS = ServerSettings(max_tokens_per_request=40, upstream_timeout_s=2.0)
LIVE = [
    {"model": "tiny-llama", "text": "w1 w2 w3 w4 w5", "layer": 1, "neurons": [3, 7]},
    {"model": "tiny-llama", "texts": ["w9 w8", "w7 w6 w5 w4"], "layer": 0, "topNeurons": 4},
    {"model": "tiny-llama", "text": "w20 w21", "layer": 1, "neurons": [0], "dst": "mlp_pre_act"},
]
RECORDS = [
    "/neuron_record/tiny-llama/mlp_post_act/1/7?context=3&activations=true",
    "/neuron_record/tiny-llama/mlp_pre_act/0/5?context=4&activations=true&hooks=all",
    "/neuron_record/tiny-llama/mlp_post_act/0/11?context=2&activations=true",
]


def call(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def server(tiny_dataset):
    register_tiny(tiny_dataset)
    with LiveServer(create_app(SETTINGS), SETTINGS) as live:
        yield live


def idle_answers() -> dict:
    """Every request alone, on a server of its own, one at a time."""
    with LiveServer(create_app(SETTINGS), SETTINGS) as idle:
        answers = {key(b): call(idle.url, "POST", "/activations", b) for b in LIVE}
        answers |= {path: call(idle.url, "GET", path) for path in RECORDS}
    return answers


def key(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


def test_live_and_record_requests_overlap_and_every_answer_is_the_idle_one(tiny_dataset, server):
    expected = idle_answers()
    jobs = [("POST", "/activations", b) for b in LIVE] + [("GET", p, None) for p in RECORDS]
    jobs = jobs * 12
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda j: (j, call(server.url, *j)), jobs))
    wrong = []
    for (method, path, body), answer in got:
        if not same(answer, expected[key(body) if body is not None else path]):
            wrong.append((method, path, answer[0]))
    assert wrong == [] and len(got) == 72
    assert all(status == 200 for _, (status, _) in got)


def test_hung_upstreams_answer_504_in_time_and_local_records_go_on(tiny_dataset, server):
    hung = HangingServer()
    try:
        registry.register_neuron_dataset_metadata(
            "hung", "mlp_post_act", "Hung", hung.url + "/x.parquet", format="glu_parquet"
        )
        results: dict[str, list] = {"hung": [], "local": []}

        def hang():
            started = time.monotonic()
            status, body = call(server.url, "GET", "/neuron_record/hung/mlp_post_act/0/0")
            results["hung"].append((status, body["detail"], time.monotonic() - started))

        threads = [threading.Thread(target=hang) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # the hung reads hold their pool's threads now
        for neuron in range(12):
            status, _ = call(
                server.url, "GET", f"/neuron_record/tiny-llama/mlp_post_act/0/{neuron}"
            )
            results["local"].append(status)
        # every local record answered while the hung reads were still waiting
        assert results["local"] == [200] * 12 and results["hung"] == []
        for thread in threads:
            thread.join(30)
        assert len(results["hung"]) == 8
        for status, detail, seconds in results["hung"]:
            assert status == 504 and "no answer within 2 s" in detail
            assert seconds < 2.0 + 3.0  # the deadline, with room for a busy machine
    finally:
        hung.close()


def test_a_gone_clients_queued_work_is_dropped(tiny_dataset, server):
    services = server.app.state.services
    runner = services.models.get("tiny-llama")
    release = threading.Event()
    real_run = runner.run

    def blocked_run(requests):
        release.wait(30)
        return real_run(requests)

    runner.run = blocked_run
    try:
        first = threading.Thread(target=call, args=(server.url, "POST", "/activations", LIVE[0]))
        first.start()  # holds the model
        time.sleep(0.5)
        body = json.dumps(LIVE[2]).encode()
        for _ in range(5):  # clients that ask and go away
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(
                b"POST /activations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            time.sleep(0.2)
            sock.close()
        time.sleep(0.5)
        release.set()
        first.join(30)
        deadline = time.monotonic() + 10
        while services.models.stats()["dropped"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = services.models.stats()
        assert stats["dropped"] == 5 and stats["waiting"] == 0
        # and the next client is answered at once
        assert call(server.url, "POST", "/activations", LIVE[2])[0] == 200
    finally:
        runner.run = real_run
        release.set()
