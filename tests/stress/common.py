"""What the stress tests share: the `neurons` command in a child process, free ports, figures."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}", "HF_HUB_OFFLINE": "1"}


def neurons(
    tmp_path: Path, *args: str, env_extra: dict | None = None, **kwargs
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "activation_server.cli", *args],
        cwd=tmp_path,
        env={**env(tmp_path), **(env_extra or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


COLLATE = ["collate", "--register", "tiny_reg", "--model", "tiny-olmo", "--corpus", "docs.jsonl",
           "--batch-size", "2", "--checkpoint-every", "20", "--engine", "eager"]  # fmt: skip


def finished(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Its exit status and everything it printed, read while it runs: waiting without reading
    lets a chatty child (progress lines) fill the pipe and block on it forever."""
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _ask_again_and_again(base, method, path, body, pause_s, stop, out) -> None:
    import httpx

    latencies, answers = [], []
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.request(method, path, json=body)
            latencies.append(time.perf_counter() - started)
            answers.append((response.status_code, response.text[:300]))
            stop.wait(pause_s)
    out.put((latencies, answers))


class Probe:
    """Asks one request again and again until stopped, noting each latency and status, from a
    process of its own: a thread of the process that generates the load would share its
    interpreter lock, and its wait for that lock would be counted as the server's latency."""

    def __init__(self, base: str, method: str, path: str, body=None, pause_s: float = 0.05):
        context = multiprocessing.get_context("spawn")
        self._stop, self._out = context.Event(), context.Queue()
        self._process = context.Process(
            target=_ask_again_and_again,
            args=(base, method, path, body, pause_s, self._stop, self._out),
            daemon=True,
        )
        self.latencies: list[float] = []
        self.answers: list[tuple[int, str]] = []

    def start(self) -> None:
        self._process.start()

    def finish(self, timeout: float = 60) -> None:
        """Stop asking; the latencies and answers noted so far."""
        self._stop.set()
        self.latencies, self.answers = self._out.get(timeout=timeout)
        self._process.join(timeout)
