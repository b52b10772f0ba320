"""Figure 2: starting the embedded model from its GGUF against starting it from the project's cache.

Every load runs in a fresh process (imports done before the clock starts), so neither case
profits from the other's warm interpreter. "GGUF" uses an empty NEURONS_HOME, which forces the
de-quantisation and writes the cache; "cache" then loads from that same home. Rounds alternate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import EMBEDDED_MODEL, FigureResult, Row, log, median

ROUNDS = 2


def _load_once(home: str) -> dict[str, float]:
    env = dict(os.environ, NEURONS_HOME=home)
    done = subprocess.run(
        [sys.executable, "-m", "bench.model_start"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> FigureResult:
    result = FigureResult("model_start")
    gguf: list[dict[str, float]] = []
    cached: list[dict[str, float]] = []
    for round_ in range(ROUNDS):
        home = tempfile.mkdtemp(prefix="bench-home-")
        try:
            gguf.append(_load_once(home))
            cached.append(_load_once(home))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        log(
            f"model_start: round {round_ + 1}: GGUF {gguf[-1]['load_s']:.1f} s, "
            f"cache {cached[-1]['load_s']:.2f} s"
        )
    slow = median([g["load_s"] for g in gguf])
    fast = median([c["load_s"] for c in cached])
    result.rows.append(
        Row(
            "model_start",
            f"load from the project's cache: {fast:.2f} s",
            f"load from the GGUF (empty NEURONS_HOME): {slow:.1f} s",
            median([g["load_s"] / c["load_s"] for g, c in zip(gguf, cached, strict=True)]),
        )
    )
    rss, base_rss = (
        median([c["peak_rss_mb"] for c in cached]),
        median([g["peak_rss_mb"] for g in gguf]),
    )
    result.rows.append(
        Row(
            "model_start",
            f"peak RSS, load from cache: {rss:.0f} MB",
            f"from the GGUF: {base_rss:.0f} MB",
            rss / base_rss,
        )
    )
    result.details = {
        "gguf": gguf,
        "cached": cached,
        "import_s": median([c["import_s"] for c in gguf + cached]),
    }
    return result


def _child() -> None:
    """Load the embedded model once under $NEURONS_HOME; print the times as one JSON line."""
    began = time.perf_counter()
    from bench.common import peak_rss_mb, quiet_libraries

    quiet_libraries()
    from activations.models.loading import load_model
    from registry import get_model

    metadata = get_model(EMBEDDED_MODEL)
    imported = time.perf_counter()
    load_model(metadata)
    loaded = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - began,
                "load_s": loaded - imported,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    _child()
