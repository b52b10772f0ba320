"""What the stress tests share: the `neurons` command in a child process, free ports, figures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
