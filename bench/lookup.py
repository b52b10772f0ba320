"""Figure 3: record lookups through the server against `GET /health` on the same server, and
against the naive ways (pandas, datasets) of finding one neuron in the same Parquet file.

Each round starts a new server, so its caches start empty. Cold: random neurons never asked
before, so every answer is made anew from its row group: read from the file on its first touch
and kept decoded (a file's groups are kept up to 512 MB), so that the neurons asked after it in
the same group are made without a read (2,000 random neurons of 360 groups: most groups are
first touched early); the server decodes the file's other groups in the background once it has
answered its first record (read ahead, at the lowest CPU priority: here, while the naive
lookups run, as far as they leave it CPU). Warm: the same neurons again, answered from the
server's cache of finished records. /health bursts of the same size alternate with them; the
ratio compares requests per second. For information, a burst of one neuron per row group of a
second copy of the file (a hard link: a reader of its own), every answer reading its group.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import FigureResult, Row, log, median, ms, percentile
from bench.dataset import N_LAYERS, N_NEURONS, write_random_dataset
from bench.serving import Call, Load, Server, client_session, run_load

ROUNDS = 3
REQUESTS = 2000  # per burst
CONCURRENCY = 16
SEQUENTIAL = 8  # single lookups per round, one at a time, to compare with the naive ways
ONE_CLIENT = 300  # warm lookups per round from one client: the latency one user feels
LATENCY_TARGET_S = 0.005  # warm p50 of one client
NAIVE = 2  # naive lookups of each kind per round
TARGET = 0.5
SHORT_NAME = "bench-lookup"
DST = "mlp_post_act"


def record_path(layer: int, neuron: int) -> str:
    return f"/neuron_record/{SHORT_NAME}/{DST}/{layer}/{neuron}"


def pandas_lookup(path: Path, layer: int, neuron: int) -> dict:
    import pandas as pd

    frame = pd.read_parquet(path)
    return frame[(frame.layer == layer) & (frame.neuron == neuron)].iloc[0].to_dict()


def datasets_lookup(path: Path, cache: str, layer: int, neuron: int) -> dict:
    import datasets

    data = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=cache)
    found = data.filter(lambda a, b: a == layer and b == neuron, input_columns=["layer", "neuron"])
    return found[0]


def _summary(load: Load) -> str:
    return (
        f"{load.per_second:.0f} req/s (p50 {ms(percentile(load.latencies, 50))}, "
        f"p99 {ms(percentile(load.latencies, 99))})"
    )


def _stats(load: Load) -> dict:
    return {
        "requests": len(load.latencies),
        "per_second": round(load.per_second, 1),
        "p50_ms": round(percentile(load.latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(load.latencies, 99) * 1000, 2),
        "errors": load.errors[:5],
    }


async def _round(
    server: Server, neurons: list[tuple[int, int]], naive: dict, first_touch: list[Call]
) -> dict:
    """One server's life: single cold lookups beside naive ones, then the bursts."""
    out: dict = {"sequential_s": [], "pandas_s": [], "datasets_s": []}
    single, neurons = neurons[:SEQUENTIAL], neurons[SEQUENTIAL:]
    async with client_session(CONCURRENCY) as session:
        await run_load(session, server.url, [Call("/health")] * 20, 4)  # connect, warm routes
        for i, (layer, neuron) in enumerate(single):
            load = await run_load(session, server.url, [Call(record_path(layer, neuron))], 1)
            out["sequential_s"].append(load.latencies[0])
            if i < NAIVE:
                for kind, lookup in naive.items():
                    began = time.perf_counter()
                    lookup(layer, neuron)
                    out[f"{kind}_s"].append(time.perf_counter() - began)
        calls = [Call(record_path(layer, neuron)) for layer, neuron in neurons]
        health = [Call("/health")] * len(calls)
        out["cold"] = await run_load(session, server.url, calls, CONCURRENCY)
        out["first_touch"] = await run_load(session, server.url, first_touch, CONCURRENCY)
        out["health"], out["warm"] = [], []
        for _ in range(2):
            out["health"].append(await run_load(session, server.url, health, CONCURRENCY))
            random.shuffle(calls)
            out["warm"].append(await run_load(session, server.url, calls, CONCURRENCY))
        out["one_health"] = await run_load(session, server.url, health[:ONE_CLIENT], 1)
        out["one_warm"] = await run_load(session, server.url, calls[:ONE_CLIENT], 1)
    out["server_peak_rss_mb"] = server.peak_rss_mb()
    return out


def run() -> FigureResult:
    import datasets

    datasets.disable_progress_bars()
    result = FigureResult("lookup")
    tmp = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    try:
        path = tmp / "records.parquet"
        made = write_random_dataset(path)
        log(f"lookup: wrote {made['bytes'] / 1e6:.0f} MB in {made['seconds']:.1f} s")
        cache = str(tmp / "datasets-cache")
        began = time.perf_counter()
        datasets_lookup(path, cache, 0, 0)
        conversion = time.perf_counter() - began
        naive = {
            "pandas": lambda layer, neuron: pandas_lookup(path, layer, neuron),
            "datasets": lambda layer, neuron: datasets_lookup(path, cache, layer, neuron),
        }
        registration = {
            "short_name": SHORT_NAME,
            "derived_scalar_type": DST,
            "user_visible_name": "benchmark records",
            "neuron_dataset_path": str(path),
            "format": "glu_parquet",
            "model": "smollm2-135m",
            "corpus": "shakespeare",
        }
        rng = random.Random(0)
        every = [(layer, neuron) for layer in range(N_LAYERS) for neuron in range(N_NEURONS)]
        linked = tmp / "records-b.parquet"
        os.link(path, linked)
        other = registration | {"short_name": SHORT_NAME + "-b", "neuron_dataset_path": str(linked)}
        rounds = []
        for round_ in range(ROUNDS):
            neurons = rng.sample(every, REQUESTS + SEQUENTIAL)
            first_touch = [
                Call(
                    record_path(*every[rng.randrange(start, stop)]).replace(
                        SHORT_NAME, other["short_name"], 1
                    )
                )
                for start, stop in _row_groups(path)
            ]
            rng.shuffle(first_touch)
            with Server([registration, other]) as server:
                rounds.append(asyncio.run(_round(server, neurons, naive, first_touch)))
            r = rounds[-1]
            log(
                f"lookup: round {round_ + 1}: cold {r['cold'].per_second:.0f}, warm "
                f"{r['warm'][-1].per_second:.0f}, health {r['health'][-1].per_second:.0f} req/s"
            )
        _rows(result, rounds, conversion)
        result.details = {
            "file": made,
            "datasets_conversion_s": conversion,
            "rounds": [
                {
                    "cold": _stats(r["cold"]),
                    "first_touch": _stats(r["first_touch"]),
                    "warm": [_stats(w) for w in r["warm"]],
                    "health": [_stats(h) for h in r["health"]],
                    "one_client_warm": _stats(r["one_warm"]),
                    "one_client_health": _stats(r["one_health"]),
                    "sequential_s": r["sequential_s"],
                    "pandas_s": r["pandas_s"],
                    "datasets_s": r["datasets_s"],
                    "server_peak_rss_mb": r["server_peak_rss_mb"],
                }
                for r in rounds
            ],
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _row_groups(path: Path) -> list[tuple[int, int]]:
    """[start, stop) rows of each row group of the file."""
    import pyarrow.parquet as pq

    bounds, start = [], 0
    metadata = pq.ParquetFile(path).metadata
    for i in range(metadata.num_row_groups):
        stop = start + metadata.row_group(i).num_rows
        bounds.append((start, stop))
        start = stop
    return bounds


def _merged(loads: list[Load]) -> Load:
    merged = Load()
    for load in loads:
        merged.latencies += load.latencies
        merged.wall += load.wall
        merged.errors += load.errors
    return merged


def _rows(result: FigureResult, rounds: list[dict], conversion: float) -> None:
    cold = _merged([r["cold"] for r in rounds])
    warm = _merged([w for r in rounds for w in r["warm"]])
    health = _merged([h for r in rounds for h in r["health"]])
    first_health = [r["health"][0] for r in rounds]
    cold_ratio = median(
        [r["cold"].per_second / h.per_second for r, h in zip(rounds, first_health, strict=True)]
    )
    warm_ratio = median(
        [
            w.per_second / h.per_second
            for r in rounds
            for w, h in zip(r["warm"], r["health"], strict=True)
        ]
    )
    errors = cold.errors + warm.errors + health.errors
    suffix = f" [{len(errors)} errors]" if errors else ""
    result.rows.append(
        Row(
            "lookup",
            f"cold records: {_summary(cold)}{suffix}",
            f"/health: {_summary(health)}",
            cold_ratio,
            TARGET,
        )
    )
    touch = _merged([r["first_touch"] for r in rounds])
    touch_ratio = median(
        [
            r["first_touch"].per_second / h.per_second
            for r, h in zip(rounds, first_health, strict=True)
        ]
    )
    result.rows.append(
        Row(
            "lookup",
            f"cold records each reading its row group (one neuron per group): {_summary(touch)}",
            f"/health: {_summary(health)}",
            touch_ratio,
        )
    )
    result.rows.append(
        Row(
            "lookup",
            f"warm records: {_summary(warm)}",
            f"/health: {_summary(health)}",
            warm_ratio,
            TARGET,
        )
    )
    one_warm = _merged([r["one_warm"] for r in rounds])
    one_health = _merged([r["one_health"] for r in rounds])
    p50, p99 = percentile(one_warm.latencies, 50), percentile(one_warm.latencies, 99)
    result.rows.append(
        Row(
            "lookup",
            f"warm records, one client: p50 {ms(p50)}, p99 {ms(p99)}",
            f"target p50 {ms(LATENCY_TARGET_S)}; /health, one client: p50 "
            f"{ms(percentile(one_health.latencies, 50))}",
            LATENCY_TARGET_S / p50,
            1.0,
        )
    )
    single = median([s for r in rounds for s in r["sequential_s"]])
    for kind, label in (
        ("pandas", "pandas read_parquet + filter"),
        ("datasets", f"datasets load_dataset + filter (after a one-time {conversion:.1f} s)"),
    ):
        naive = median([s for r in rounds for s in r[f"{kind}_s"]])
        result.rows.append(
            Row(
                "lookup",
                f"one cold lookup via the server: {ms(single)}",
                f"{label}: {ms(naive)}",
                naive / single,
            )
        )
