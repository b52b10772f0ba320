"""Figure 6: `GET /neuron_record/olmo-7b/...` over the published dataset as it is on the Hub.

A full-size replica of sjgerstner/OLMo-7B-0424-hf_neuron-activations (352,256 rows in the card's
schema, three shards written by `datasets` with its own row groups; made once, kept under
.cache/bench) is served under its real name by a local Hub (tests/hub.py) that adds 50 ms to every
answer. The server runs in its own process with HF_ENDPOINT pointing there and an empty
NEURONS_HOME: the first record after a cold start (the first request once the server answers
/health: nothing of the dataset fetched, opened or cached yet), a cold neuron (requests and bytes
after the footers), a second derived scalar of that neuron, a warm neuron's p50. Baseline: what a
reader of the card does, `datasets.load_dataset(...)` and a filter to that first record, against
the same local Hub.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FigureResult, Row, environment, log, median, ms, percentile
from bench.serving import Server, client_session, loopback_env, request

REPO_ID = "sjgerstner/OLMo-7B-0424-hf_neuron-activations"
REPLICA = Path(__file__).parents[1] / ".cache" / "bench" / "olmo-replica"
LAYERS, NEURONS = 32, 11008
LATENCY_S = 0.05
FIRST = "/neuron_record/olmo-7b/mlp_post_act/3/1024"
COLD = "/neuron_record/olmo-7b/mlp_post_act/20/5000"  # another shard and row group
SECOND_DST = "/neuron_record/olmo-7b/mlp_pre_act/20/5000"
WARM_REQUESTS = 300
COLD_STARTS = 3  # the first record's time is the median of these (a fresh server and home each)
GOAL_FIRST_S, GOAL_WARM_S, GOAL_SPEEDUP = 2.0, 0.001, 100.0

BASELINE = """
import json, sys, time
began = time.perf_counter()
import datasets
datasets.disable_progress_bars()
ds = datasets.load_dataset(sys.argv[1], split="train")
row = ds.filter(lambda r: r["layer"] == 3 and r["neuron"] == 1024)[0]
print(json.dumps({"seconds": time.perf_counter() - began, "freq": row["gate+_in+_freq"]}))
"""


def replica() -> Path:
    """The full-size replica, written once (a few minutes) and kept."""
    stamp = REPLICA / "made.json"
    if stamp.exists():
        return REPLICA
    from tests.replica import write_replica

    log(f"published: writing a full-size replica ({LAYERS} × {NEURONS} rows) under {REPLICA}")
    began = time.perf_counter()
    shutil.rmtree(REPLICA, ignore_errors=True)
    write_replica(REPLICA, LAYERS, NEURONS)
    stamp.write_text(json.dumps({"rows": LAYERS * NEURONS, "s": time.perf_counter() - began}))
    return REPLICA


def file_reads(hub, since: int) -> list[tuple]:
    return [entry for entry in hub.log[since:] if "/resolve/" in entry[1]]


async def _get(session, url: str) -> float:
    began = time.perf_counter()
    status = await request(session, url, None)
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}")
    return time.perf_counter() - began


async def _measure(server: Server, hub) -> dict:
    out: dict = {}
    async with client_session(1) as session:
        mark = len(hub.log)
        out["first_s"] = await _get(session, server.url + FIRST)
        reads = file_reads(hub, mark)
        out["first_log"] = [list(entry[:3]) for entry in hub.log[mark:]]
        out["first_requests"] = {
            "api": len(hub.log) - mark - len(reads),
            "footers": sum(1 for r in reads if r[3] and r[3].startswith("bytes=-")),
            "data": sum(1 for r in reads if not (r[3] and r[3].startswith("bytes=-"))),
        }
        for name, path in (("cold", COLD), ("second_dst", SECOND_DST)):
            mark, sent = len(hub.log), hub.bytes_sent
            seconds = await _get(session, server.url + path)
            out[name] = {
                "s": seconds,
                "requests": len(hub.log) - mark,
                "bytes": hub.bytes_sent - sent,
            }
        warm = [await _get(session, server.url + COLD) for _ in range(WARM_REQUESTS)]
        out["warm_p50_s"], out["warm_p99_s"] = median(warm), percentile(warm, 99)
    return out


async def _first(server: Server) -> float:
    async with client_session(1) as session:
        return await _get(session, server.url + FIRST)


def _baseline(endpoint: str, home: Path) -> dict:
    env = loopback_env() | {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", BASELINE, REPO_ID], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the baseline failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> FigureResult:
    from tests.hub import FakeHub

    result = FigureResult("published")
    folder = replica()
    size = sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))
    hub = FakeHub(content_hashes=False)
    hub.add_repo("dataset", REPO_ID, str(folder))
    hub.latency_s = LATENCY_S
    hub.start()
    home = Path(tempfile.mkdtemp(prefix="bench-published-"))
    try:
        firsts = []
        for start in range(COLD_STARTS):
            with environment(
                HF_ENDPOINT=hub.endpoint,
                HF_HUB_OFFLINE="0",
                NEURONS_HOME=str(home / f"neurons-{start}"),
            ):
                began = time.perf_counter()
                with Server() as server:
                    listening = time.perf_counter() - began
                    ready = server.wait_ready()  # its start-up, then the first record from cold
                    if start == 0:
                        measured = asyncio.run(_measure(server, hub))
                        measured["server_peak_rss_mb"] = server.peak_rss_mb()
                        measured["server_listening_s"] = listening
                        measured["server_ready_s"] = listening + ready
                        firsts.append(measured["first_s"])
                    else:
                        firsts.append(asyncio.run(_first(server)))
        measured["first_each_s"] = firsts
        measured["first_s"] = median(firsts)
        shown = ", ".join(f"{s:.2f}" for s in firsts)
        log(f"published: first record {measured['first_s']:.2f} s ({shown}); the baseline next")
        with environment(HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0"):
            baseline = _baseline(hub.endpoint, home)
    finally:
        hub.stop()
        shutil.rmtree(home, ignore_errors=True)
    _rows(result, measured, baseline)
    result.details = {
        "replica_bytes": size,
        "latency_s": LATENCY_S,
        **measured,
        "baseline_s": baseline["seconds"],
        "round_trip_floor_s": round_trip_floor(measured["first_requests"]),
    }
    return result


def round_trip_floor(asked: dict[str, int]) -> float:
    """The least time the first record can take over this hub: its requests depend on each
    other (the listing names the files, the footers place the row's bytes), so each kind of
    request is one more round trip of LATENCY_S before the data, decoding aside."""
    return LATENCY_S * sum(1 for kind in ("api", "footers", "data") if asked[kind])


def _rows(result: FigureResult, m: dict, baseline: dict) -> None:
    first, cold, second = m["first_s"], m["cold"], m["second_dst"]
    asked = m["first_requests"]
    floor = round_trip_floor(asked)
    result.rows += [
        Row(
            "published",
            f"first record after a cold start: {first:.2f} s (median of {len(m['first_each_s'])}"
            f" starts; {asked['api']} listing, "
            f"{asked['footers']} footer, {asked['data']} data requests)",
            f"goal {GOAL_FIRST_S:g} s",
            GOAL_FIRST_S / first,
            1.0,
        ),
        Row(
            "published",
            f"first record: {first:.2f} s",
            f"datasets.load_dataset + filter: {baseline['seconds']:.1f} s",
            baseline["seconds"] / first,
            GOAL_SPEEDUP,
        ),
        Row(
            "published",
            f"the round trips alone: {ms(floor)} (listing, footers, data: "
            f"{ms(LATENCY_S)} each, one after the other)",
            f"datasets.load_dataset + filter: {baseline['seconds']:.1f} s",
            baseline["seconds"] / floor,
        ),
        Row(
            "published",
            f"cold neuron: {cold['requests']} request, {cold['bytes'] / 1e6:.1f} MB, "
            f"{ms(cold['s'])}",
            "goal 1 request",
            1 / cold["requests"] if cold["requests"] else None,
            1.0,
        ),
        Row(
            "published",
            f"second dst of it: {second['requests']} request, {second['bytes'] / 1e6:.1f} MB, "
            f"{ms(second['s'])}",
            f"the cold neuron: {cold['bytes'] / 1e6:.1f} MB",
            cold["bytes"] / second["bytes"] if second["bytes"] else None,
        ),
        Row(
            "published",
            f"warm neuron p50: {ms(m['warm_p50_s'])} (p99 {ms(m['warm_p99_s'])})",
            f"goal {ms(GOAL_WARM_S)}",
            GOAL_WARM_S / m["warm_p50_s"],
            1.0,
        ),
    ]
