"""What careless and hostile requests get: the status of what went wrong (never a 500) with its
reason, without reading anything that cannot answer them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.pools import DaemonPool
from activations.records.sizes import deep_bytes
from activations.sources import glu_source
from registry.metadata import DatasetFormat
from tests.activation_server.conftest import register_tiny
from tests.servers import HangingServer, LiveServer


def register(short_name: str, path: str) -> None:
    registry.register_neuron_dataset_metadata(
        short_name, "mlp_post_act", short_name, path, format="glu_parquet", model="tiny-llama"
    )


def test_token_search_on_a_remote_dataset_is_422_before_any_read(client):
    upstream = HangingServer()
    try:
        register("hung", upstream.url + "/x.parquet")
        answer = client.get("/search/token/hung/mlp_post_act", params={"token": "w1"})
        assert answer.status_code == 422
        assert "token search reads local files; hung is remote" in answer.json()["detail"]
        assert upstream.accepted == []  # nothing was asked of the upstream
    finally:
        upstream.close()


def test_token_search_on_a_missing_or_corrupt_file_is_404_or_502(client, tmp_path):
    register("gone", str(tmp_path / "gone.parquet"))
    answer = client.get("/search/token/gone/mlp_post_act", params={"token": "w1"})
    assert answer.status_code == 404 and "does not exist" in answer.json()["detail"]
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet" * 100)
    register("junk", str(junk))
    answer = client.get("/search/token/junk/mlp_post_act", params={"token": "w1"})
    assert answer.status_code == 502 and "not a readable Parquet file" in answer.json()["detail"]
    # the records of the same files answer alike
    assert client.get("/neuron_record/gone/mlp_post_act/0/0").status_code == 404
    assert client.get("/neuron_record/junk/mlp_post_act/0/0").status_code == 502


def test_the_servers_record_caches_keep_within_their_budget(tiny_dataset):
    register_tiny(tiny_dataset)
    budget_mb = 0.05
    settings = ServerSettings(record_cache_mb=budget_mb, max_tokens_per_request=40)
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for neuron in range(24):
            answer = client.get(
                f"/neuron_record/tiny-llama/mlp_post_act/0/{neuron}?hooks=all&context=8"
            )
            assert answer.status_code == 200
        services = app.state.services
        cache = services.sources._formats[DatasetFormat.GLU_PARQUET].cache
        kept = cache.values()
        assert 0 < len(kept) < 24
        assert sum(deep_bytes(record) for record in kept) <= budget_mb * 2**20
        assert services.answers._cache.weight <= budget_mb * 2**20


def test_a_full_remote_pool_is_503_with_retry_after(tiny_dataset):
    register_tiny(tiny_dataset)
    upstream = HangingServer()
    app = create_app(ServerSettings(upstream_timeout_s=2.0))
    try:
        register("hung", upstream.url + "/x.parquet")
        with TestClient(app, base_url="http://127.0.0.1") as client:
            app.state.services.pools.remote = DaemonPool("remote read", 1, max_waiting=0)
            answer = client.get("/neuron_record/hung/mlp_post_act/0/0")
            assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
            assert "remote read jobs are waiting already" in answer.json()["detail"]
    finally:
        upstream.close()


def test_a_malformed_progress_file_is_skipped_and_named(client, tmp_path, caplog):
    files = {
        "list": "[1, 2]",
        "junk": "{not json",
        "types": '{"pid": 1, "documents_done": "many"}',
        "group": '{"pid": 0, "state": "collating"}',
    }
    for name, text in files.items():
        register(name, str(tmp_path / f"{name}.parquet"))
        (tmp_path / f"{name}.parquet.progress.json").write_text(text)
    with caplog.at_level("WARNING", logger="activation_server"):
        answer = client.get("/progress")
    assert answer.status_code == 200
    shown = {tuple(p["shortNames"]): p for p in answer.json()}
    assert shown[("group",)]["state"] == "stopped"  # pid 0 is a process group, not a run
    assert not {("list",), ("junk",), ("types",)} & set(shown)
    for name in ("list", "junk", "types"):
        assert f"{name}.parquet.progress.json" in caplog.text


def test_a_clients_requests_beyond_its_limit_are_503_and_health_answers(tiny_dataset):
    register_tiny(tiny_dataset)
    settings = ServerSettings(max_in_flight_per_client=2)
    entered, release = threading.Semaphore(0), threading.Event()
    real = glu_source.GluDatasetSource._summary

    def held(self, *args, **kwargs):
        if kwargs.get("decoded_only"):  # on the event loop, where the group is decoded
            return real(self, *args, **kwargs)  # (none is: the pool's read is held below)
        entered.release()
        release.wait(30)
        return real(self, *args, **kwargs)

    glu_source.GluDatasetSource._summary = held
    try:
        with LiveServer(create_app(settings), settings) as live, ThreadPoolExecutor(6) as pool:

            def record(neuron: int) -> httpx.Response:
                url = f"{live.url}/neuron_record/tiny-llama/mlp_post_act/0/{neuron}"
                return httpx.get(url, timeout=60)

            held_two = [pool.submit(record, n) for n in (1, 2)]
            assert entered.acquire(timeout=30) and entered.acquire(timeout=30)
            refused = [record(n) for n in (3, 4, 5)]  # while the two are in flight
            assert httpx.get(f"{live.url}/health").status_code == 200
            release.set()
            assert [f.result().status_code for f in held_two] == [200, 200]
        for answer in refused:
            assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
            assert "2 requests of this client to /neuron_record" in answer.json()["detail"]
    finally:
        glu_source.GluDatasetSource._summary = real
        release.set()


def test_live_requests_and_token_searches_do_not_wait_behind_example_text(tiny_dataset):
    """The CPU pool that example text is tokenized on is full: live requests, prompt and token
    searches are answered meanwhile, from budgets of their own."""
    register_tiny(tiny_dataset)
    app = create_app(ServerSettings(max_tokens_per_request=40))
    release = threading.Event()
    with TestClient(app, base_url="http://127.0.0.1") as client:
        cpu = app.state.services.pools.cpu
        held = [cpu.submit(release.wait, 60) for _ in range(cpu.threads + 2)]
        try:
            body = {"model": "tiny-llama", "text": "w1 w2 w3", "layer": 0, "topNeurons": 2}
            assert client.post("/activations", json=body).status_code == 200
            body = {"model": "tiny-llama", "text": "w1 w2 w3", "topNeurons": 2}
            assert client.post("/search/prompt", json=body).status_code == 200
            answer = client.get("/search/token/tiny-llama/mlp_post_act?tokenId=5")
            assert answer.status_code == 200
            assert not any(future.done() for future in held)  # all the while, it was full
        finally:
            release.set()
