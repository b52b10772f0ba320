"""Figure 1: collation throughput against the bare forward pass it rides on.

The Collator (its default engine here, as `neurons collate` runs it) and a bare
`model.base_model(...)` under inference_mode, up to the same last layer (a collation of layers
0-9 stops the pass after layer 9, and so does its baseline), see the same batches of Shakespeare
documents, alternately; the ratio of their token rates is what reading every neuron costs.
torch.compile gets a fresh cache directory so that its one-time warm-up is the one a first run
pays. The default engine is the CPU kernel wherever it builds (its rows name the vectors it
was built with: avx512, avx2, neon, sse2). Timing starts once the top-k lists hold k documents,
the costliest stretch of a run (later, fewer and fewer candidates enter the lists). The ratio
is total forward time over total collation time: a median of per-batch ratios would hide the
batches in which the kernel's waiting candidates enter their lists. After each fill every
candidate enters its list, untimed; after the timed batches, the candidates of those batches
still waiting (or, with the torch engines, still buffered) enter theirs, timed. A case fills
and times 5 batches with a fresh Collator RUNS times at 30 layers, and proportionally more
often at fewer layers, so that every case times about as many layer passes and the short passes
of the 1-layer case are not left to the machine's noise. The target is judged for the engine
`--engine auto` runs here; another engine's rows are information (what `auto` would leave).

The value histogram's cost (activations.collate: each neuron's counts per quadrant and bin) is
measured apart, on the same batches: a collation with it, one without it and the bare forward
pass take turns on each timed batch (HISTOGRAM_CASE, the default engine), so that the machine's
noise falls on all three alike; its row gives the histogram's time as a share of the
collation's and of the forward pass's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import torch

from bench.common import (
    EMBEDDED_MODEL,
    FigureResult,
    Row,
    log,
    peak_rss_mb,
    reset_peak_rss,
)

MAX_TOKENS = 512
REPEATS = 5  # batches timed after each fill
RUNS = 2  # fresh collations per case at 30 layers; more at fewer layers
# (documents per batch, layers read, engine): batch size grows at 30 layers, layers grow at 2
# documents, all with the default engine; then the torch.compile engine for comparison.
CASES: tuple[tuple[int, int, str], ...] = (
    (1, 30, "auto"),
    (2, 30, "auto"),
    (4, 30, "auto"),
    (2, 1, "auto"),
    (2, 10, "auto"),
    (2, 30, "compiled"),
)
TARGET = 0.9
HISTOGRAM_CASE = (2, 30)  # documents per batch, layers read: the histogram's cost


def layer_subset(count: int, n_layers: int) -> list[int]:
    """`count` layers spread over the model."""
    step = max(1, n_layers // count)
    return list(range(0, n_layers, step))[:count]


def flush(collator) -> None:
    """Every candidate into its list: the kernel's waiting ones, or the torch engines' buffer."""
    for accumulator in collator.accumulators.values():
        accumulator.settle()


def histogram_cost(collator_of, batch, forward, size: int, layers: list[int]) -> dict[str, float]:
    """Seconds of a collation with the value histogram, one without and the forward pass, over
    the same timed batches (each after its lists fill, as the cases are timed), in turns."""
    times: dict[str, float] = {"with": 0.0, "without": 0.0, "forward": 0.0}
    turn = 0
    for _ in range(RUNS):
        both = {"with": collator_of(True), "without": collator_of(False)}
        while both["with"].n_documents < both["with"].top_k:  # untimed: the lists fill
            fill = batch(size)
            for collator in both.values():
                collator.add_batch(*fill)
        for collator in both.values():
            flush(collator)
        for _ in range(REPEATS):
            ids, mask, docs = batch(size)
            order = ["with", "without", "forward"]
            for who in order[turn % 3 :] + order[: turn % 3]:
                began = time.perf_counter()
                if who == "forward":
                    forward(ids, mask, layers[-1])
                else:
                    both[who].add_batch(ids, mask, docs)
                times[who] += time.perf_counter() - began
            turn += 1
        for name, collator in both.items():  # the timed documents' waiting candidates
            began = time.perf_counter()
            flush(collator)
            times[name] += time.perf_counter() - began
    return times


def run() -> FigureResult:
    from activations.collate import Collator
    from activations.collate.heap import retained_heap
    from activations.corpus import load_corpus
    from activations.models.adapters import find_mlp_sites
    from activations.models.capture import MlpCapture
    from activations.models.loading import load_model
    from registry import get_model

    result = FigureResult("collation")
    compile_cache = tempfile.mkdtemp(prefix="bench-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = compile_cache
    try:
        with retained_heap():  # as `neurons collate` runs; the bare passes share it
            log("collation: loading the model and the Shakespeare corpus")
            model, tokenizer = load_model(get_model(EMBEDDED_MODEL))
            corpus = load_corpus("shakespeare", tokenizer, MAX_TOKENS)
            n_layers = model.config.num_hidden_layers
            next_doc = 0

            def batch(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                nonlocal next_doc
                docs = list(corpus.documents[next_doc : next_doc + size])
                if len(docs) < size:
                    raise RuntimeError("the benchmark ran out of Shakespeare documents")
                encoded = tokenizer(
                    docs, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
                )
                indices = torch.arange(next_doc, next_doc + size)
                next_doc += size
                return encoded["input_ids"], encoded["attention_mask"], indices

            sites = find_mlp_sites(model)

            def forward(ids: torch.Tensor, mask: torch.Tensor, last_layer: int) -> None:
                """The bare pass up to the last layer read: collation stops there too."""
                with torch.inference_mode(), MlpCapture([sites[last_layer]], lambda *_: None):
                    model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)

            warmups: dict[str, float] = {}
            auto_runs = Collator(model, layers=[0], engine="auto").engine
            for size, count, engine in CASES:
                layers = layer_subset(count, n_layers)
                collator = Collator(model, layers=layers, engine=engine)
                judged = engine == "auto" or collator.engine == auto_runs
                engine_name = collator.engine
                if engine_name == "kernel":  # the vectors it was built with: avx512, avx2, neon…
                    from activations.collate import kernel

                    engine_name = f"kernel ({kernel.isa()})"
                label = f"{size}×{MAX_TOKENS} tok, {count} layers, {engine_name}"
                if not judged:
                    label += f" (information: --engine auto runs {auto_runs} here)"
                ids, mask, docs = batch(size)
                began = time.perf_counter()
                collator.add_batch(ids, mask, docs)  # builds the kernel or compiles the reduction
                first = time.perf_counter() - began
                began = time.perf_counter()
                forward(ids, mask, layers[-1])
                warmups[label] = round(first - (time.perf_counter() - began), 2)
                log(f"collation: {label}: first call {first:.1f} s (warm-up)")
                times: dict[str, list[float]] = {"collator": [], "forward": []}
                peaks: dict[str, list[float]] = {"collator": [], "forward": []}
                tokens = timed = 0
                for run_index in range(RUNS * max(1, n_layers // count)):
                    if run_index:  # a fresh run: every batch timed comes right after the fill
                        collator = Collator(model, layers=layers, engine=engine)
                    while collator.n_documents < collator.top_k:  # untimed: the lists fill
                        collator.add_batch(*batch(size))
                    flush(collator)  # untimed: the fill's candidates all in the lists
                    for _ in range(REPEATS):
                        ids, mask, docs = batch(size)
                        tokens += int(mask.sum())
                        order = ["forward", "collator"] if timed % 2 else ["collator", "forward"]
                        timed += 1
                        for who in order:
                            reset_peak_rss()
                            began = time.perf_counter()
                            if who == "collator":
                                collator.add_batch(ids, mask, docs)
                            else:
                                forward(ids, mask, layers[-1])
                            times[who].append(time.perf_counter() - began)
                            peaks[who].append(peak_rss_mb())
                    began = time.perf_counter()
                    flush(collator)  # the timed documents' candidates still waiting, timed
                    times["collator"][-1] += time.perf_counter() - began
                subject = tokens / sum(times["collator"])
                baseline = tokens / sum(times["forward"])
                log(f"collation: {label}: {subject:.0f} vs {baseline:.0f} tok/s")
                result.rows.append(
                    Row(
                        "collation",
                        f"Collator {label}: {subject:.0f} tok/s",
                        f"forward: {baseline:.0f} tok/s",
                        sum(times["forward"]) / sum(times["collator"]),
                        TARGET if judged else None,
                    )
                )
                rss, base_rss = max(peaks["collator"]), max(peaks["forward"])
                result.rows.append(
                    Row(
                        "collation",
                        f"peak RSS, Collator {label}: {rss:.0f} MB",
                        f"forward: {base_rss:.0f} MB",
                        rss / base_rss,
                    )
                )
                result.details[label] = {
                    "collator_s": times["collator"],
                    "forward_s": times["forward"],
                    "tokens": tokens,
                    "peak_rss_mb": {"collator": peaks["collator"], "forward": peaks["forward"]},
                }
            size, count = HISTOGRAM_CASE
            layers = layer_subset(count, n_layers)
            times = histogram_cost(
                lambda histogram: Collator(model, layers=layers, histogram=histogram),
                batch,
                forward,
                size,
                layers,
            )
            alone = times["with"] - times["without"]
            engine_name = Collator(model, layers=layers[:1]).engine
            if engine_name == "kernel":
                from activations.collate import kernel

                engine_name = f"kernel ({kernel.isa()})"
            setting = f"{size}×{MAX_TOKENS} tok, {count} layers, {engine_name}"
            log(f"collation: value histogram ({setting}): {times}")
            result.rows.append(
                Row(
                    "collation",
                    f"value histogram alone ({setting}): {alone / times['with']:.1%} of the "
                    f"collation's time, {alone / times['forward']:.1%} of a forward pass's",
                    f"without it: {times['forward'] / times['without']:.2f}× the forward "
                    f"pass's speed; with it {times['forward'] / times['with']:.2f}×",
                    times["without"] / times["with"],
                )
            )
            result.details["value_histogram_s"] = times
            total = sum(warmups.values())
            result.details["warmup_s"] = warmups
            first_label = next(iter(warmups))
            result.rows.append(
                Row(
                    "collation",
                    f"build or compile (excluded): {warmups[first_label]:.1f} s first, "
                    f"{total:.1f} s over all cases",
                    "—",
                    None,
                )
            )
    finally:
        shutil.rmtree(compile_cache, ignore_errors=True)
    return result
