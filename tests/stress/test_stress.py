"""Long load and kill tests (`make stress`): bounded, loopback only, and they stop by themselves.

Figures are printed (run with -s to see them); the assertions are about errors and correctness,
never about speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from tests.activations.reference import assert_columns_identical
from tests.stress.common import COLLATE, env, finished, free_port, neurons, percentile
from tests.tiny import random_documents

pytestmark = pytest.mark.stress
ROOT = Path(__file__).parents[2]


def test_kill_9_during_collation_then_resume_gives_the_same_file(tiny_setup):
    tmp = tiny_setup
    whole = neurons(tmp, *COLLATE, "--out", "whole.parquet")
    code, out = finished(whole, 600)
    assert code == 0, out
    checkpoint = tmp / "killed.parquet.ckpt"
    survived = 0
    for kill_after in (0.5, 1.5):  # kill twice, at different points
        run = neurons(tmp, *COLLATE, "--out", "killed.parquet", "--resume")
        deadline = time.time() + 120
        while not checkpoint.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(kill_after)
        assert run.poll() is None, "the run ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        assert not (tmp / "killed.parquet").exists()  # never a half-written output
        assert checkpoint.exists()
        survived += 1
    resumed = neurons(tmp, *COLLATE, "--out", "killed.parquet", "--resume")
    code, out = finished(resumed, 600)
    assert code == 0, out
    assert not checkpoint.exists()
    assert_columns_identical(
        pq.read_table(tmp / "whole.parquet"), pq.read_table(tmp / "killed.parquet")
    )
    print(f"\nkill -9 faults injected and survived: {survived}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_load_records_while_live_activations_run(tiny_setup):
    tmp = tiny_setup
    build = neurons(tmp, *COLLATE, "--out", "whole.parquet", "--max-docs", "200")
    code, out = finished(build, 600)
    assert code == 0, out
    port = free_port()
    server = neurons(tmp, "serve", "--register", "tiny_reg", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        figures = asyncio.run(_load(base, server.pid))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    print("\nload figures: " + json.dumps(figures))
    assert figures["record_errors"] == 0 and figures["live_errors"] == 0
    assert figures["records_sent"] == 5000
    assert figures["live_requests_done"] > 0
    assert figures["rss_growth_mb"] < 300  # bounded: caches are LRUs


async def _load(base: str, pid: int) -> dict:
    n_records, clients = 5000, 64
    rss_start = rss_mb(pid)
    peak = rss_start
    latencies: list[float] = []
    health: list[float] = []
    errors = {"record": 0, "live": 0}
    done = {"live": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n_records):
        queue.put_nowait(i)
    text = " ".join(random_documents(1, seed=1, max_words=40)[0].split() * 6)
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def record_client() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                layer, neuron = i % 3, (i * 7) % 20
                started = time.perf_counter()
                r = await client.get(f"/neuron_record/tiny-olmo/mlp_post_act/{layer}/{neuron}")
                latencies.append(time.perf_counter() - started)
                errors["record"] += r.status_code != 200

        async def live_client() -> None:
            while not stop.is_set():
                r = await client.post(
                    "/activations", json={"model": "tiny-olmo", "text": text, "layer": 1, "topK": 5}
                )
                errors["live"] += r.status_code != 200
                done["live"] += 1

        async def health_probe() -> None:
            nonlocal peak
            while not stop.is_set():
                started = time.perf_counter()
                await client.get("/health")
                health.append(time.perf_counter() - started)
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.05)

        background = [asyncio.create_task(live_client()) for _ in range(4)]
        probe = asyncio.create_task(health_probe())
        started = time.perf_counter()
        await asyncio.gather(*(record_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        # the model keeps computing; /health alone shows whether the event loop is free
        under_load, health = health, []
        while len(health) < 100:
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*background, probe)

    return {
        "records_sent": len(latencies),
        "record_errors": errors["record"],
        "live_errors": errors["live"],
        "records_per_s": round(len(latencies) / elapsed, 1),
        "record_p50_ms": round(1000 * statistics.median(latencies), 2),
        "record_p99_ms": round(1000 * percentile(latencies, 99), 2),
        "health_p99_ms_beside_64_record_clients": round(1000 * percentile(under_load, 99), 2),
        "health_p50_ms_beside_live_requests": round(1000 * statistics.median(health), 2),
        "health_p99_ms_beside_live_requests": round(1000 * percentile(health, 99), 2),
        "live_requests_done": done["live"],
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(peak - rss_start, 1),
    }


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def test_killed_rank_of_a_torchrun_job_resumes_to_the_same_result(tiny_setup):
    tmp = tiny_setup
    torchrun = str(Path(sys.executable).parent / "torchrun")
    args = [a for a in COLLATE if a != "collate"] + ["--max-docs", "600"]
    # one thread, as each rank below: a forward pass's float rounding depends on the threads
    # its matrix products are split over, and the maxima must match bit for bit
    one_thread = {"OMP_NUM_THREADS": "1"}
    single = neurons(
        tmp, *COLLATE, "--max-docs", "600", "--out", "single.parquet", env_extra=one_thread
    )
    code, out = finished(single, 600)
    assert code == 0, out

    def job() -> subprocess.Popen:
        return subprocess.Popen(
            [torchrun, "--standalone", "--nproc-per-node=2", "--max-restarts=0",
             "-m", "activations.collate", *args, "--out", "dist.parquet", "--resume"],
            cwd=tmp, env={**env(tmp), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    first = job()
    deadline = time.time() + 300
    while len(list(tmp.glob("dist.parquet.rank*.ckpt"))) < 2 and time.time() < deadline:
        time.sleep(0.01)
    ranks = children(first.pid)
    assert ranks and first.poll() is None, "the job ended before a rank could be killed"
    os.kill(ranks[-1], signal.SIGKILL)
    assert finished(first, 120)[0] != 0
    assert not (tmp / "dist.parquet").exists()
    second = job()
    code, out = finished(second, 600)
    assert code == 0, out[-3000:]
    a, b = pq.read_table(tmp / "single.parquet"), pq.read_table(tmp / "dist.parquet")
    exact = [c for c in a.column_names if not c.endswith(("_sum", "_mean", "_freq"))]
    assert_columns_identical(a, b, exact)
    print("\nkilled rank resumed: 1 fault injected and survived")
