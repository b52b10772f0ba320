"""Figure 4: records from a remote source through the server, cache miss against cache hit.

A local aiohttp server stands in for the remote store, adding a fixed delay to every request
(Range requests served, as blob stores do): neuron-explainer records (`tdb_json`, one JSON file
per neuron, shaped and sized like the published ones) and the GLU Parquet file. Requests go one
at a time; the kinds alternate so that drift in the machine's load touches them alike.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from aiohttp import web

from bench.common import FigureResult, Row, log, median, ms
from bench.dataset import N_NEURONS, write_random_dataset
from bench.serving import LOOPBACK, Call, Server, client_session, run_load

DELAY_S = 0.05
PAIRS = 20
TDB_LAYER = 5
# neuron-explainer's records: top activations, a random sample, samples by quantile; 64 tokens
TOP, RANDOM, QUANTILES, PER_QUANTILE, TOKENS = 20, 20, 5, 20, 64


def _activation_record(rng: random.Random, words: list[str], peak: float) -> dict:
    start = rng.randrange(len(words) - TOKENS)
    values = [round(rng.gauss(0.0, 0.05), 4) for _ in range(TOKENS)]
    values[rng.randrange(TOKENS)] = round(peak, 4)
    return {
        "dataclass_name": "ActivationRecord",
        "tokens": [" " + w for w in words[start : start + TOKENS]],
        "activations": values,
    }


def write_tdb_records(root: Path, neurons: list[int], words: list[str]) -> int:
    """One record per neuron under root/{layer}/{neuron}.json; returns the median size."""
    sizes = []
    for neuron in neurons:
        rng = random.Random(neuron)
        record = {
            "dataclass_name": "NeuronRecord",
            "neuron_id": {
                "dataclass_name": "NeuronId",
                "layer_index": TDB_LAYER,
                "neuron_index": neuron,
            },
            "random_sample": [_activation_record(rng, words, 0.3) for _ in range(RANDOM)],
            "random_sample_by_quantile": [
                [_activation_record(rng, words, 0.5 * (q + 1)) for _ in range(PER_QUANTILE)]
                for q in range(QUANTILES)
            ],
            "quantile_boundaries": [0.5 * q for q in range(QUANTILES + 1)],
            "mean": 0.01,
            "variance": 0.04,
            "skewness": 3.2,
            "kurtosis": 21.5,
            "most_positive_activation_records": [
                _activation_record(rng, words, 4.0 - 0.1 * i) for i in range(TOP)
            ],
        }
        path = root / str(TDB_LAYER) / f"{neuron}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        sizes.append(path.stat().st_size)
    return int(median(sizes))


def _upstream(root: Path, counts: Counter) -> web.Application:
    """Static files with a fixed delay per request; FileResponse answers Range requests."""

    @web.middleware
    async def delay(request: web.Request, handler):
        counts["ranged" if "Range" in request.headers else "whole"] += 1
        await asyncio.sleep(DELAY_S)
        return await handler(request)

    async def serve_file(request: web.Request) -> web.StreamResponse:
        path = (root / request.match_info["tail"]).resolve()
        if root not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application(middlewares=[delay])
    app.router.add_get("/{tail:.+}", serve_file)
    return app


def _row_group_range(path: Path, group: int) -> str:
    """The byte range of one row group's column chunks: what a ranged read of it fetches."""
    rg = pq.ParquetFile(path).metadata.row_group(group)
    starts, ends = [], []
    for j in range(rg.num_columns):
        column = rg.column(j)
        first = column.dictionary_page_offset or column.data_page_offset
        starts.append(first)
        ends.append(column.data_page_offset + column.total_compressed_size)
    return f"bytes={min(starts)}-{max(ends) - 1}"


async def _measure(root: Path, parquet: Path) -> dict:
    counts: Counter = Counter()
    runner = web.AppRunner(_upstream(root, counts), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp exposes no public accessor
    upstream = f"http://{LOOPBACK}:{port}"
    datasets = [
        {
            "short_name": "bench-remote-tdb",
            "derived_scalar_type": "mlp_post_act",
            "user_visible_name": "benchmark tdb_json records over HTTP",
            "neuron_dataset_path": f"{upstream}/tdb",
        },
        {
            "short_name": "bench-remote-glu",
            "derived_scalar_type": "mlp_post_act",
            "user_visible_name": "benchmark GLU records over HTTP",
            "neuron_dataset_path": f"{upstream}/{parquet.name}",
            "format": "glu_parquet",
            "model": "smollm2-135m",
        },
    ]
    out: dict = {k: [] for k in ("direct", "tdb_miss", "tdb_hit", "rg_direct")}
    out |= {k: [] for k in ("glu_miss", "glu_hit", "glu_group_hit")}
    try:
        with Server(datasets) as server:
            async with client_session(4) as session:

                async def once(base: str, path: str, headers: dict | None = None) -> float:
                    began = time.perf_counter()
                    async with session.get(base + path, headers=headers) as response:
                        await response.read()
                        if response.status not in (200, 206):
                            raise RuntimeError(f"{path}: HTTP {response.status}")
                    return time.perf_counter() - began

                await run_load(session, server.url, [Call("/health")] * 10, 1)
                glu = "/neuron_record/bench-remote-glu/mlp_post_act"
                before = counts.copy()
                out["glu_open"] = await once(server.url, f"{glu}/0/0")
                out["open_requests"] = dict(counts - before)
                groups = random.Random(1).sample(range(1, 360), PAIRS)
                before = counts.copy()
                for i, group in enumerate(groups):
                    layer, first = divmod(group * 128, N_NEURONS)
                    tdb = f"/neuron_record/bench-remote-tdb/mlp_post_act/{TDB_LAYER}/{i}"
                    out["direct"].append(await once(upstream, f"/tdb/{TDB_LAYER}/{i}.json"))
                    out["tdb_miss"].append(await once(server.url, tdb))
                    out["tdb_hit"].append(await once(server.url, tdb))
                    ranged = {"Range": _row_group_range(parquet, group)}
                    out["rg_direct"].append(await once(upstream, f"/{parquet.name}", ranged))
                    out["glu_miss"].append(await once(server.url, f"{glu}/{layer}/{first}"))
                    out["glu_hit"].append(await once(server.url, f"{glu}/{layer}/{first}"))
                    out["glu_group_hit"].append(
                        await once(server.url, f"{glu}/{layer}/{first + 1}")
                    )
                out["pair_requests"] = dict(counts - before)
    finally:
        await runner.cleanup()
    return out


def run() -> FigureResult:
    from activations.corpus import shakespeare_plays

    result = FigureResult("remote")
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-")).resolve()
    try:
        words = shakespeare_plays()[0][1].split()
        size = write_tdb_records(tmp / "tdb", list(range(PAIRS)), words)
        parquet = tmp / "records.parquet"
        write_random_dataset(parquet)
        log(f"remote: {PAIRS} tdb_json records of ~{size / 1000:.0f} kB and the Parquet file")
        out = asyncio.run(_measure(tmp, parquet))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = {k: median(v) for k, v in out.items() if isinstance(v, list)}
    delay = f"+{DELAY_S * 1000:.0f} ms per request"
    log(f"remote: tdb miss {ms(m['tdb_miss'])}, hit {ms(m['tdb_hit'])}")
    result.rows += [
        Row(
            "remote",
            f"tdb_json hit: {ms(m['tdb_hit'])}",
            f"tdb_json miss ({size / 1000:.0f} kB, {delay}): {ms(m['tdb_miss'])}",
            m["tdb_miss"] / m["tdb_hit"],
        ),
        Row(
            "remote",
            f"tdb_json miss via the server: {ms(m['tdb_miss'])}",
            f"same file fetched directly: {ms(m['direct'])}",
            m["direct"] / m["tdb_miss"],
        ),
        Row(
            "remote",
            f"glu_parquet hit: {ms(m['glu_hit'])}",
            f"glu_parquet miss (new row group): {ms(m['glu_miss'])}",
            m["glu_miss"] / m["glu_hit"],
        ),
        Row(
            "remote",
            f"glu_parquet new neuron, row group cached: {ms(m['glu_group_hit'])}",
            f"miss (new row group): {ms(m['glu_miss'])}",
            m["glu_miss"] / m["glu_group_hit"],
        ),
        Row(
            "remote",
            f"glu_parquet miss via the server: {ms(m['glu_miss'])}",
            f"its row group's bytes fetched directly: {ms(m['rg_direct'])}",
            m["rg_direct"] / m["glu_miss"],
        ),
        Row(
            "remote",
            f"glu_parquet first request (opens the file): {ms(out['glu_open'])}",
            f"one direct fetch: {ms(m['direct'])}",
            m["direct"] / out["glu_open"],
        ),
    ]
    result.details = out | {"medians_s": m, "tdb_record_bytes": size, "delay_s": DELAY_S}
    return result
