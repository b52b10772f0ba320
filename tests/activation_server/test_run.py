"""`neurons run` on an empty home: the page at once, the default dataset collated meanwhile by a
process of its own, its records from the first checkpoint on, live activations meanwhile, and a
stop that leaves the checkpoint for the next run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
RECORD = "/neuron_record/smollm2-135m/mlp_post_act/3/1024"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data,
        headers={"content-type": "application/json"} if data else {},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    except OSError:
        return 0, ""
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_for(check, timeout: float, every: float = 0.5):
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        found = check()
        if found:
            return found, time.monotonic() - began
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.slow
def test_run_serves_at_once_and_collates_in_the_background(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    env = {**os.environ, "NEURONS_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "activation_server.cli", "run", "--port", str(port),
         "--max-docs", "6", "--checkpoint-every", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _, page_s = wait_for(lambda: get(port, "/")[0] == 200, 60)
        runs = get(port, "/progress")[1]
        assert runs and runs[0]["shortNames"] == ["smollm2-135m"]
        status, body = get(port, RECORD)  # the page came before any record of the collation
        assert status == 404 and "does not exist" in body["detail"]

        def first_record():
            status, body = get(port, RECORD)
            return body if status == 200 else None

        record, _ = wait_for(first_record, 400, every=2)
        assert record["quadrants"] and record["layer"] == 3
        status, live = get(port, "/activations", {"model": "smollm2-135m", "text": "To be",
                                                   "layer": 3, "neurons": [1024]})  # fmt: skip
        assert status == 200 and live["results"][0]["neurons"][0]["neuron"] == 1024
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert "collating the default dataset" in output
    out = home / "datasets"
    workers = subprocess.run(["pgrep", "-f", f"--out {out}"], capture_output=True, text=True)
    assert workers.stdout.strip() == ""  # the background collation stopped with the server
