"""Figure 8: `neurons run` on a fresh home (installed, nothing built, nothing cached): the time to
the first page and to the first record of the default dataset, which is collated in the
background meanwhile (its records appear at its first checkpoint). Goal: the page within 30 s."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import FigureResult, Row, log
from bench.serving import loopback_env

RECORD = "/neuron_record/smollm2-135m/mlp_post_act/3/1024"
GOAL_PAGE_S = 30.0
LIMIT_S = 900.0


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _until(port: int, path: str, began: float) -> float:
    while time.perf_counter() - began < LIMIT_S:
        if _status(port, path) == 200:
            return time.perf_counter() - began
        time.sleep(0.25)
    raise RuntimeError(f"{path} did not answer within {LIMIT_S:.0f} s")


def run() -> FigureResult:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="bench-first-run-"))
    env = loopback_env() | {"NEURONS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    began = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "activation_server.cli", "run", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        page = _until(port, "/", began)
        log(f"first_run: the page after {page:.1f} s; waiting for the first record")
        record = _until(port, RECORD, began)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)
    result = FigureResult("first_run")
    result.rows += [
        Row("first_run", f"`neurons run`, fresh home: the first page after {page:.1f} s",
            f"goal {GOAL_PAGE_S:.0f} s", GOAL_PAGE_S / page, 1.0),
        Row("first_run", f"the first record (the background collation's first checkpoint) "
            f"after {record:.0f} s", "—", None),
    ]  # fmt: skip
    result.details = {"page_s": page, "record_s": record, "cpus": os.cpu_count()}
    return result
