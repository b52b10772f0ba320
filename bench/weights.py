"""Figure 10: weight views of every SmolLM2-135M neuron (30 layers × 1536 = 46,080): the time to
compute them all from the loaded model (cosines, classes, six token lists through a 49,152-token
vocabulary, moments of each neuron's logits), goal ≤ 60 s on 2 cores, with the peak memory it
adds beside the model's; then a cached neuron's views as the server looks them up (from the
memory-mapped file, token texts included), goal p50 ≤ 5 ms."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import (
    EMBEDDED_MODEL,
    FigureResult,
    Row,
    environment,
    log,
    median,
    ms,
    peak_rss_mb,
    percentile,
    reset_peak_rss,
)

GOAL_S = 60.0
LOOKUP_GOAL_S = 0.005
LOOKUPS = 400


def run() -> FigureResult:
    from activations.models.pool import ModelPool
    from activations.weights.compute import weight_views
    from activations.weights.store import WeightTable, cache_path, write_table
    from activations.weights.views import WeightViews

    result = FigureResult("weights")
    home = Path(tempfile.mkdtemp(prefix="bench-weights-"))
    try:
        models = ModelPool()
        runner = models.get(EMBEDDED_MODEL)
        sites = runner.sites  # loads the model (its converted copy, kept under the usual home)
        with environment(NEURONS_HOME=str(home)):  # the views alone go to a fresh home
            model_mb = peak_rss_mb()
            reset_peak_rss()
            began = time.perf_counter()
            table = weight_views(runner.model, sites, runner.metadata.refactor_glu)
            seconds = time.perf_counter() - began
            peak = peak_rss_mb()
            write_table(table, cache_path(runner.metadata))
            n = table.num_rows
            log(f"weights: {n:,} neurons in {seconds:.1f} s, peak RSS {peak:.0f} MB")
            views = WeightViews(models)
            views.view(EMBEDDED_MODEL, 0, 0)  # opens the file, decodes the vocabulary once
            rng = random.Random(0)
            times = []
            for _ in range(LOOKUPS):
                layer, neuron = rng.randrange(len(sites)), rng.randrange(sites[0].n_neurons)
                start = time.perf_counter()
                views.view(EMBEDDED_MODEL, layer, neuron)
                times.append(time.perf_counter() - start)
            p50, p99 = median(times), percentile(times, 99)
            size_mb = cache_path(runner.metadata).stat().st_size / 2**20
            counts = WeightTable.open(cache_path(runner.metadata)).counts()[0]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result.rows += [
        Row("weights", f"weight views of all {n:,} SmolLM2 neurons: {seconds:.1f} s, peak RSS "
            f"{peak:.0f} MB (the model loaded: {model_mb:.0f} MB)", f"goal {GOAL_S:.0f} s",
            GOAL_S / seconds, 1.0),
        Row("weights", f"a cached neuron's views (a {size_mb:.0f} MB file): p50 {ms(p50)}, "
            f"p99 {ms(p99)}", f"goal p50 {ms(LOOKUP_GOAL_S)}", LOOKUP_GOAL_S / p50, 1.0),
    ]  # fmt: skip
    result.details = {
        "seconds": seconds, "peak_rss_mb": peak, "model_rss_mb": model_mb, "p50_s": p50,
        "p99_s": p99, "file_mb": size_mb, "cpus": os.cpu_count(),
        "class_totals": {name: sum(v) for name, v in counts.items()},
    }  # fmt: skip
    return result
