"""The activation server in its own process (as `neurons serve` runs it), and a load client.

The server gets a process of its own so that it and the client do not share one interpreter
lock: the client's cost would otherwise be counted as the server's.
Child: `python -m bench.serving SPEC.json` registers the spec's datasets, binds an ephemeral port
on 127.0.0.1, prints `PORT <n>` and serves until terminated.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import peak_rss_mb

LOOPBACK = "127.0.0.1"


def loopback_env() -> dict[str, str]:
    """The environment for children: loopback never goes through a proxy."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name), LOOPBACK, "localhost"]))
    return env


class Server:
    """A server process over the given dataset registrations; a context manager."""

    def __init__(self, datasets: Sequence[dict[str, Any]] = (), settings: dict | None = None):
        self.spec = {"datasets": list(datasets), "settings": settings or {}}
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._spec_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> Server:
        fd, name = tempfile.mkstemp(prefix="bench-serve-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self.spec, f)
        self._spec_file = Path(name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serving", name],
            stdout=subprocess.PIPE,
            text=True,
            env=loopback_env(),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Seconds until GET /health answers 200 (the app's start-up done: the port is bound,
        and connections wait, before it)."""
        import urllib.request

        began = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - began
            except OSError:
                pass
            if time.perf_counter() - began > timeout_s:
                raise RuntimeError(f"the server did not answer /health in {timeout_s:.0f} s")
            time.sleep(0.02)

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._spec_file is not None:
            self._spec_file.unlink(missing_ok=True)


@dataclass
class Load:
    """Outcome of a burst of requests: per-request latencies and the wall time of the burst."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


@dataclass(frozen=True)
class Call:
    path: str
    body: dict | None = None  # POST when set


async def run_load(
    session: aiohttp.ClientSession, base: str, calls: Sequence[Call], concurrency: int
) -> Load:
    """Send `calls` with at most `concurrency` in flight; a non-200 answer is an error."""
    load = Load()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(calls):
            call = calls[next_index]
            next_index += 1
            began = time.perf_counter()
            try:
                status = await request(session, base + call.path, call.body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                load.errors.append(f"{call.path}: {type(error).__name__}: {error}")
                continue
            if status != 200:
                load.errors.append(f"{call.path}: HTTP {status}")
            load.latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.wall = time.perf_counter() - began
    return load


async def request(session: aiohttp.ClientSession, url: str, body: dict | None) -> int:
    """One request's status; sent again once if it failed on a pooled connection that the
    server had closed before the request went out (the server's keep-alive ran out)."""
    method = "POST" if body is not None else "GET"
    for attempt in (1, 2):
        try:
            async with session.request(method, url, json=body) as response:
                await response.read()
                return response.status
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def client_session(concurrency: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=120),
    )


def _serve(spec_path: str) -> None:
    import uvicorn

    from activation_server.app import create_app
    from activation_server.cli import server_config
    from activation_server.settings import ServerSettings
    from bench.common import quiet_libraries
    from registry import register_neuron_dataset_metadata

    quiet_libraries()
    spec = json.loads(Path(spec_path).read_text())
    for dataset in spec["datasets"]:
        register_neuron_dataset_metadata(**dataset)
    settings = ServerSettings(**spec["settings"])
    app = create_app(settings)
    # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and accepted sockets inherit it; with proto 0 every answer waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(1024)  # connections wait in the backlog until uvicorn accepts them
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = server_config(app, settings)  # as `neurons serve` runs it
    config.access_log, config.backlog = False, 1024
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    _serve(sys.argv[1])
