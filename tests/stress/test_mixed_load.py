"""Mixed load on `neurons serve` (`make stress`): live requests and records with example values
at once, every answer compared with the same request on an idle server; hung upstreams beside
local traffic; the peak memory of the heaviest allowed requests on the embedded model.

Assertions are about correctness (no wrong answer, no 5xx, every hung read answered 504 in
time); the figures are printed (run with -s)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.compare import same
from tests.servers import HangingServer
from tests.stress.common import COLLATE, finished, free_port, neurons, percentile

pytestmark = pytest.mark.stress
TIMEOUT_S = 3.0  # the server's upstream_timeout_s here


def vm(pid: int, field: str) -> float:
    """A /proc/PID/status field in MB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Served:
    """`neurons serve` in a child process, with the given register module."""

    def __init__(
        self, tmp: Path, register: str, *options: str, env_extra: dict | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        port = str(self.port)
        self.process = neurons(
            tmp, "serve", "--register", register, "--port", port, *options, env_extra=env_extra
        )
        for _ in range(600):
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the server did not start: " + self.process.stdout.read())

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


def requests_of(text: str) -> list[tuple[str, str, dict | None]]:
    live = [
        (
            "POST",
            "/activations",
            {"model": "tiny-olmo", "text": text, "layer": layer, "topNeurons": 5},
        )
        for layer in range(3)
    ]
    live.append(
        (
            "POST",
            "/activations",
            {
                "model": "tiny-olmo",
                "texts": [text[:80], text[40:]],
                "layer": 2,
                "neurons": [1, 4, 9],
                "dst": "mlp_pre_act",
            },
        )
    )
    records = [
        (
            "GET",
            f"/neuron_record/tiny-olmo/mlp_post_act/{layer}/{neuron}?context={c}&activations=true",
            None,
        )
        for layer, neuron, c in [(0, 3, 4), (1, 7, 8), (2, 11, 64), (1, 19, 2)]
    ]
    records.append(
        (
            "GET",
            "/neuron_record/tiny-olmo/mlp_post_act/2/5?context=6&activations=true&hooks=all",
            None,
        )
    )
    return live + records


async def ask(client: httpx.AsyncClient, method: str, path: str, body) -> tuple[int, object]:
    response = await client.request(method, path, json=body)
    return response.status_code, response.json()


def test_mixed_live_and_context_records_are_all_correct(tiny_setup):
    from tests.tiny import random_documents

    tmp = tiny_setup
    build = neurons(tmp, *COLLATE, "--out", "whole.parquet", "--max-docs", "200")
    code, out = finished(build, 900)
    assert code == 0, out
    text = " ".join(random_documents(1, seed=1, max_words=40)[0].split() * 3)
    calls = requests_of(text)

    async def idle(base: str) -> list:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return [await ask(client, *c) for c in calls]

    async def mixed(base: str, rounds: int, clients: int) -> tuple[list, list[float]]:
        jobs = [c for _ in range(rounds) for c in calls]
        got: list = [None] * len(jobs)
        latencies: list[float] = []
        queue = asyncio.Queue()
        for i in range(len(jobs)):
            queue.put_nowait(i)
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:

            async def worker():
                while not queue.empty():
                    i = queue.get_nowait()
                    started = time.perf_counter()
                    got[i] = (jobs[i], await ask(client, *jobs[i]))
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(clients)))
        return got, latencies

    quiet = Served(tmp, "tiny_reg")
    try:
        expected = asyncio.run(idle(quiet.base))
    finally:
        quiet.close()
    assert all(status == 200 for status, _ in expected), expected
    busy = Served(tmp, "tiny_reg")
    try:
        started = time.perf_counter()
        got, latencies = asyncio.run(mixed(busy.base, rounds=20, clients=24))
        wall = time.perf_counter() - started
        peak = vm(busy.process.pid, "VmHWM")
    finally:
        busy.close()
    index = {json.dumps(c, sort_keys=True): i for i, c in enumerate(calls)}
    wrong = [
        job
        for job, answer in got
        if not same(answer, expected[index[json.dumps(job, sort_keys=True)]])
    ]
    server_errors = [job for job, (status, _) in got if status >= 500]
    figures = {
        "requests": len(got),
        "wrong_answers": len(wrong),
        "5xx": len(server_errors),
        "requests_per_s": round(len(got) / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1),
        "server_peak_rss_mb": round(peak, 1),
    }
    print("\nmixed live + context records: " + json.dumps(figures))
    assert wrong == [] and server_errors == [] and len(got) == 20 * len(calls)


def test_hanging_upstreams_beside_local_traffic(tiny_setup):
    tmp = tiny_setup
    build = neurons(tmp, *COLLATE, "--out", "whole.parquet", "--max-docs", "60")
    code, out = finished(build, 900)
    assert code == 0, out
    hung = [HangingServer() for _ in range(2)]
    register = tmp / "hung_reg.py"
    register.write_text(
        "import tiny_reg\nfrom registry import register_neuron_dataset_metadata\n"
        + "".join(
            f"register_neuron_dataset_metadata('hung{i}', 'mlp_post_act', 'Hung', "
            f"'{h.url}/x.parquet', format='glu_parquet')\n"
            for i, h in enumerate(hung)
        )
    )
    server = Served(tmp, "hung_reg", "--upstream-timeout", str(TIMEOUT_S))
    local_paths = [f"/neuron_record/tiny-olmo/mlp_post_act/{i % 3}/{i % 20}" for i in range(2000)]

    async def local_load(client) -> tuple[list[float], int]:
        latencies, errors = [], 0
        for path in local_paths:
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200
        return latencies, errors

    async def hung_reader(client, name: str, until: asyncio.Event, answers: list) -> None:
        while not until.is_set():
            started = time.perf_counter()
            response = await client.get(f"/neuron_record/{name}/mlp_post_act/0/0")
            answers.append((response.status_code, time.perf_counter() - started))

    async def run() -> dict:
        async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
            await client.get(local_paths[0])
            quiet, quiet_errors = await local_load(client)
            stop, answers = asyncio.Event(), []
            readers = [
                asyncio.create_task(hung_reader(client, f"hung{i % 2}", stop, answers))
                for i in range(16)
            ]
            await asyncio.sleep(0.5)
            loaded, loaded_errors = await local_load(client)
            stop.set()
            await asyncio.gather(*readers)
        return {
            "quiet": quiet,
            "loaded": loaded,
            "errors": quiet_errors + loaded_errors,
            "answers": answers,
        }

    try:
        result = asyncio.run(run())
        # hung reads are still in flight in the server (the upstreams never answer)
        started = time.perf_counter()
        server.close()
        shutdown_s = time.perf_counter() - started
    finally:
        if server.process.poll() is None:
            server.process.kill()
        for h in hung:
            h.close()
    late = [(s, t) for s, t in result["answers"] if s != 504 or t > TIMEOUT_S + 2]
    figures = {
        "local_p99_ms_quiet": round(1000 * percentile(result["quiet"], 99), 2),
        "local_p99_ms_beside_16_hung_reads": round(1000 * percentile(result["loaded"], 99), 2),
        "hung_reads_answered": len(result["answers"]),
        "hung_reads_late_or_not_504": len(late),
        "local_errors": result["errors"],
        "shutdown_s_with_hung_reads": round(shutdown_s, 1),
    }
    figures["p99_ratio"] = round(
        figures["local_p99_ms_beside_16_hung_reads"] / figures["local_p99_ms_quiet"], 2
    )
    print("\nhanging upstreams beside local records: " + json.dumps(figures))
    assert result["errors"] == 0 and late == [] and len(result["answers"]) >= 16
    assert shutdown_s < 30  # it waited for no hung read


def test_peak_memory_of_the_heaviest_requests_on_the_embedded_model(tmp_path):
    """SmolLM2 over a few Shakespeare documents of 1024 tokens; then the heaviest requests the
    server allows, concurrently: every hook's examples with 64 tokens of context and values,
    and live requests of 16 texts of 1024 tokens."""
    home = tmp_path / "home"
    dataset_file = tmp_path / "smol.parquet"
    build = neurons(tmp_path, "collate", "--model", "smollm2-135m", "--corpus", "shakespeare",
                    "--max-docs", "8", "--layers", "0,15,29", "--out", str(dataset_file),
                    env_extra={"NEURONS_HOME": str(home)})  # fmt: skip
    code, out = finished(build, 1800)
    assert code == 0, out
    (tmp_path / "smol_reg.py").write_text(
        "from registry import register_neuron_dataset_metadata\n"
        "for dst in ('mlp_post_act', 'mlp_pre_act'):\n"
        f"    register_neuron_dataset_metadata('smol', dst, 'Smol', {str(dataset_file)!r},\n"
        "        format='glu_parquet', model='smollm2-135m', corpus='shakespeare')\n"
    )
    server = Served(tmp_path, "smol_reg", env_extra={"NEURONS_HOME": str(home)})
    long_text = " ".join(["To be, or not to be, that is the question."] * 70)  # ~850 tokens

    async def heavy() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base, timeout=1800) as client:
            records = [
                client.get(
                    f"/neuron_record/smol/{dst}/{layer}/{n}?context=64&activations=true&hooks=all"
                )
                for dst, layer, n in [
                    ("mlp_post_act", 29, 3),
                    ("mlp_pre_act", 15, 100),
                    ("mlp_post_act", 0, 7),
                ]
            ]
            live = [
                client.post(
                    "/activations",
                    json={
                        "model": "smollm2-135m",
                        "texts": [long_text] * 16,
                        "layer": 29,
                        "topNeurons": 8,
                    },
                )
                for _ in range(2)
            ]
            return [r.status_code for r in await asyncio.gather(*records, *live)]

    try:
        rss_before = vm(server.process.pid, "VmRSS")
        statuses = asyncio.run(heavy())
        peak = vm(server.process.pid, "VmHWM")
    finally:
        server.close()
    figures = {"statuses": statuses, "rss_before_mb": round(rss_before, 1),
               "peak_rss_mb": round(peak, 1), "goal_mb": 4096}  # fmt: skip
    print("\nheaviest allowed requests on SmolLM2: " + json.dumps(figures))
    assert all(status == 200 for status in statuses)
