"""Figure: one SmolLM2-135M neuron's weight view before the model's table exists, as the first
neuron page asks for it: computed from that neuron's vectors alone (three products of its rows
with the 49,152-token vocabulary, reduced; token texts included), goal p50 ≤ 100 ms on 2 cores;
the same while the model-wide table is computed in the background (as it is on a fresh home);
then, once the table is written, how many of those views are its rows bit for bit, and how many
neurons' IO class folding the pre-MLP norm's scale changes (the authors' reading against the
raw rows)."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    EMBEDDED_MODEL,
    FigureResult,
    Row,
    environment,
    log,
    median,
    ms,
    percentile,
)

GOAL_S = 0.100
VIEWS = 40


def run() -> FigureResult:
    import numpy as np

    from activations.models.pool import ModelPool
    from activations.weights.compute import Vocabulary, neuron_views
    from activations.weights.views import WeightViews

    result = FigureResult("weight_view")
    home = Path(tempfile.mkdtemp(prefix="bench-weight-view-"))
    try:
        models = ModelPool()
        runner = models.get(EMBEDDED_MODEL)
        sites = runner.sites  # loads the model (its converted copy, kept under the usual home)
        rng = random.Random(0)
        n = sites[0].n_neurons
        picks = [(rng.randrange(len(sites)), rng.randrange(n)) for _ in range(VIEWS)]
        vocabulary = Vocabulary.of(runner.model, sites)

        def timed(layer: int, neuron: int) -> float:
            start = time.perf_counter()
            neuron_views(sites[layer], vocabulary, neuron, runner.metadata.refactor_glu)
            return time.perf_counter() - start

        # the computation alone, nothing else running, on a pool thread as the server runs it
        with ThreadPoolExecutor(1) as pool:
            alone = [pool.submit(timed, *pick).result() for pick in picks]
        with environment(NEURONS_HOME=str(home)):  # a fresh home: no table yet
            views = WeightViews(models)
            start = time.perf_counter()
            first = views.view(EMBEDDED_MODEL, *picks[0])  # starts the table's computation
            first_s = time.perf_counter() - start
            during, answered = [], {}
            with ThreadPoolExecutor(1) as pool:
                for layer, neuron in picks:
                    start = time.perf_counter()
                    done = pool.submit(views.view, EMBEDDED_MODEL, layer, neuron)
                    answered[(layer, neuron)] = done.result()
                    during.append(time.perf_counter() - start)
            log(f"weight_view: alone {ms(median(alone))}, beside the table {ms(median(during))}")
            began = time.perf_counter()
            table = views.table(EMBEDDED_MODEL, wait=True)
            log(f"weight_view: the table {time.perf_counter() - began:.0f} s after the views")
            same = sum(views.view(EMBEDDED_MODEL, *k) == v for k, v in answered.items())
            folded, raw = table.columns["io_class"], table.columns["raw_io_class"]
            layers = table.columns["layer"]
            names = range(len(table.metadata["classes"]))
            per_layer = [
                int(np.abs((folded[layers == lay] == c).sum() - (raw[layers == lay] == c).sum()))
                for lay in table.layers for c in names
            ]  # fmt: skip
            changed = int((folded != raw).sum())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    p50, p99 = median(alone), percentile(alone, 99)
    result.rows += [
        Row("weight_view", f"a neuron's weight view alone, before the model's table: p50 "
            f"{ms(p50)}, p99 {ms(p99)} ({VIEWS} neurons)", f"goal p50 {ms(GOAL_S)}",
            GOAL_S / p50, 1.0),
        Row("weight_view", f"the same through the server's code while the table is computed "
            f"beside it: p50 {ms(median(during))}, p99 {ms(percentile(during, 99))}; the first "
            f"(the vocabulary's texts decoded once) {ms(first_s)}", "information", None),
        Row("weight_view", f"those views against the table's rows: {same} of {len(answered)} "
            "identical", "all", same / len(answered), 1.0),
        Row("weight_view", f"IO classes folded vs raw: {changed:,} of {len(folded):,} neurons "
            f"differ; a layer's class count by up to {max(per_layer)}", "information", None),
    ]  # fmt: skip
    result.details = {
        "alone_p50_s": p50, "alone_p99_s": p99, "during_p50_s": median(during),
        "first_s": first_s, "identical": same, "views": len(answered),
        "classes_changed_by_folding": changed, "largest_layer_count_change": max(per_layer),
        "first_view_class": first.io_class,
    }  # fmt: skip
    return result
