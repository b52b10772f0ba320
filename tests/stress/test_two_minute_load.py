"""Two minutes of mixed load on `neurons serve` (`make stress`): heavy records (every hook, 64
tokens of context and their values), live requests, prompt and token searches, cold records of
a remote copy of the dataset, and slow clients that dribble their bodies, all at once.

Asserted: no 5xx but 502/503/504, each with its reason; live requests' p99 under 2 s while
heavy records run; /health's p99 under 100 ms; the server's resident memory at the end within
RSS_BUDGET_MB of where it started (after a first request of each kind). The figures are printed
(run with -s). Probes of live and /health latency run in processes of their own, so that the
load generator's own work (reading megabytes of JSON) is not counted as the server's.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time

import httpx
import pytest

from tests.servers import RangeServer
from tests.stress.common import COLLATE, Probe, finished, neurons, percentile
from tests.stress.test_mixed_load import Served, vm

pytestmark = pytest.mark.stress
DURATION_S = 120.0
RSS_BUDGET_MB = 300.0  # growth allowed over the two minutes: caches are bounded by bytes
CACHE_MB = 64  # --cache-mb: each in-memory cache of answers
LIVE_P99_S = 2.0
HEALTH_P99_S = 0.100
NEURONS = 20  # tiny OLMo: 3 layers of 20; a record's context varies so that most are cold


def slow_client(port: int, stop: threading.Event, sent: list[int]) -> None:
    """A client that sends its request body a byte at a time, 0.5 s apart, again and again."""
    body = b'{"model": "tiny-olmo", "text": "w1 w2", "layer": 0}'
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"POST /activations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            try:
                for byte in body:
                    if stop.wait(0.5):
                        break
                    sock.sendall(bytes([byte]))
                    sent[0] += 1
                sock.recv(4096)
            except OSError:  # answered 408 and closed: the next one
                pass


def test_two_minutes_of_mixed_load(tiny_setup):
    tmp = tiny_setup
    code, out = finished(neurons(tmp, *COLLATE, "--out", "whole.parquet", "--max-docs", "80"), 900)
    assert code == 0, out
    upstream = RangeServer({"/whole.parquet": (tmp / "whole.parquet").read_bytes()})
    (tmp / "load_reg.py").write_text(
        "import tiny_reg\nfrom registry import register_neuron_dataset_metadata\n"
        "register_neuron_dataset_metadata('remote', 'mlp_post_act', 'Remote copy', "
        f"{upstream.url('/whole.parquet')!r}, format='glu_parquet', model='tiny-olmo')\n"
    )
    server = Served(tmp, "load_reg", "--upstream-timeout", "5", "--cache-mb", str(CACHE_MB))
    rng = random.Random(7)
    answers: list[tuple[str, int, str]] = []

    async def ask(client: httpx.AsyncClient, kind: str, method: str, path: str, body=None):
        response = await client.request(method, path, json=body)
        answers.append((kind, response.status_code, response.text[:300]))

    def heavy_path(name: str = "tiny-olmo", query: str | None = None) -> str:
        if query is None:  # every hook, 32-64 tokens of context and their values
            query = f"?hooks=all&context={rng.randrange(32, 65)}&activations=true"
        return (
            f"/neuron_record/{name}/mlp_post_act/{rng.randrange(3)}/{rng.randrange(NEURONS)}{query}"
        )

    calls = {
        "heavy record": lambda: ("GET", heavy_path(), None),
        "cold remote record": lambda: ("GET", heavy_path("remote", "?hooks=all"), None),
        "prompt search": lambda: (
            "POST",
            "/search/prompt",
            {"model": "tiny-olmo", "text": "w1 w2 w3 w4 w5 w6", "topNeurons": 5},
        ),  # fmt: skip
        "token search": lambda: (
            "GET",
            f"/search/token/tiny-olmo/mlp_post_act?tokenId={rng.randrange(3, 40)}",
            None,
        ),  # fmt: skip
    }
    tasks_of = {"heavy record": 6, "cold remote record": 2, "prompt search": 1, "token search": 1}

    async def load(until: float) -> None:
        async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:

            async def loop(kind: str) -> None:
                while time.monotonic() < until:
                    await ask(client, kind, *calls[kind]())

            await asyncio.gather(*(loop(k) for k, n in tasks_of.items() for _ in range(n)))

    async def warm_up() -> None:
        async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
            for kind in calls:
                await ask(client, kind, *calls[kind]())
            await ask(client, "live", "POST", "/activations", LIVE)

    try:
        asyncio.run(warm_up())
        rss_start = vm(server.process.pid, "VmRSS")
        live = Probe(server.base, "POST", "/activations", LIVE, pause_s=0.1)
        health = Probe(server.base, "GET", "/health", pause_s=0.05)
        stop, sent = threading.Event(), [0]
        slow = [threading.Thread(target=slow_client, args=(server.port, stop, sent), daemon=True)
                for _ in range(4)]  # fmt: skip
        for started in [live, health, *slow]:
            started.start()
        asyncio.run(load(time.monotonic() + DURATION_S))
        for probe in (live, health):
            probe.finish()
        stop.set()
        rss_end = vm(server.process.pid, "VmRSS")
        peak = vm(server.process.pid, "VmHWM")
    finally:
        server.close()
        upstream.close()
    answers += [("live", s, t) for s, t in live.answers]
    answers += [("health", s, t) for s, t in health.answers]
    by_kind: dict[str, dict[int, int]] = {}
    for kind, status, _ in answers:
        by_kind.setdefault(kind, {}).setdefault(status, 0)
        by_kind[kind][status] += 1
    bad = [(k, s, t) for k, s, t in answers if s >= 500 and (s not in (502, 503, 504)
           or not json.loads(t or "{}").get("detail"))]  # fmt: skip
    figures = {
        "statuses": by_kind,
        "live_p50_ms": round(1000 * percentile(live.latencies, 50), 1),
        "live_p99_ms": round(1000 * percentile(live.latencies, 99), 1),
        "health_p50_ms": round(1000 * percentile(health.latencies, 50), 2),
        "health_p99_ms": round(1000 * percentile(health.latencies, 99), 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_budget_mb": RSS_BUDGET_MB,
        "slow_client_bytes": sent[0],
    }
    print("\ntwo minutes of mixed load: " + json.dumps(figures))
    assert bad == [], bad[:5]
    assert by_kind["heavy record"].get(200, 0) > 0 and by_kind["live"].get(200, 0) > 0
    assert percentile(live.latencies, 99) < LIVE_P99_S
    assert percentile(health.latencies, 99) < HEALTH_P99_S
    assert rss_end - rss_start < RSS_BUDGET_MB


LIVE = {"model": "tiny-olmo", "text": "w1 w2 w3 w4", "layer": 1, "topNeurons": 3}
