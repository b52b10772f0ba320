"""Figure `explain`: neuron-explainer's method with the embedded SmolLM2-135M-Instruct, in
process, on this CPU.

- one neuron explained and scored as `neurons explain` explains a target, by the default
  explainer (`embedded`: bfloat16 where the CPU multiplies it natively, else float32): 5 train
  records shown, 3 candidates of up to 40 tokens, each simulated on the valid records (5 top,
  5 random, 25 tokens each), against the goal of 5 s; its parts (the explanation's generation,
  one candidate's simulation) and the CPU seconds beside the wall seconds; the same with one
  candidate (`--candidates 1`), and in float32 (`embedded-float32`, information);
- the simulator's tokens per second (prompt tokens of the 10 sequences' all-at-once prompts,
  one pass over what follows their shared beginning) against a bare forward pass of the base
  model over the same whole prompts; goal >= 0.8x;
- a batch of neurons explained one after another (BENCH_EXPLAIN_NEURONS, 100 by default):
  its wall time.

Every pass runs on the model's own worker thread, as in `neurons explain` and the server, the
model loaded there too: torch's OpenMP threads stop spinning between parallel regions once a
second thread of the process has run one (more threads than cores), and a pass then takes about
a quarter longer (a simulation 1.02 s on one thread against 1.23-1.55 s across two, measured
here). The neuron is synthetic (Shakespeare passages, the neuron firing on pronouns), so that
the figure needs no collated dataset. torch's thread count is in each row (OMP_NUM_THREADS=1
on cores shared with other work).
"""

from __future__ import annotations

import asyncio
import os
import time

from bench.common import EMBEDDED_MODEL, FigureResult, Row, log, median

GOAL_S = 5.0
SIM_TARGET = 0.8
PRONOUNS = {" I", " me", " my", " you", " your", " he", " him", " his", " she", " her", " we"}


def _target(tokenizer, seed: int = 0):
    from activations.explanations.pipeline import Target
    from activations.records.tdb_json import ActivationRecord
    from bench.live import make_texts

    texts = make_texts(tokenizer, 35 + seed)[seed:]
    records = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:25]
        tokens = [tokenizer.decode([i]) for i in ids]
        values = [3.0 + len(t) if t in PRONOUNS else 0.0 for t in tokens]
        records.append(ActivationRecord(tokens=tokens, activations=values))
    ranked = sorted(records, key=lambda r: -max(r.activations))
    return Target(None, ranked[:20], ranked[20:])


def _timed(work) -> tuple[float, float, object]:
    """Wall and CPU seconds of a call (CPU: this process's, every thread's)."""
    wall, cpu = time.perf_counter(), time.process_time()
    found = work()
    return time.perf_counter() - wall, time.process_time() - cpu, found


def run() -> FigureResult:
    from activations.models.pool import ModelPool

    pool = ModelPool()
    try:
        return pool.worker(EMBEDDED_MODEL).submit(_figure).result()
    finally:
        pool.stop()


def _backend(lm):
    """An in-process backend whose work runs where it is awaited (here: the model's thread)."""
    from activations.explanations.backends import InProcessBackend

    async def here(work):
        return work(lm)

    return InProcessBackend(EMBEDDED_MODEL, here)


def _figure(runner) -> FigureResult:
    import torch

    from activations.explanations.local import LocalLM
    from activations.explanations.pipeline import explain, train_records, valid_records
    from activations.explanations.prompts import explanation_messages, simulation_prompt
    from activations.explanations.service import EXAMPLES_PER_SPLIT as PER_SPLIT
    from registry.explanations import get_explainer

    result = FigureResult("explain")
    threads = torch.get_num_threads()
    model, tokenizer = runner.model, runner.tokenizer
    lm = LocalLM(model, tokenizer, EMBEDDED_MODEL, dtype=get_explainer().dtype)
    dtype = str(lm.model.dtype).removeprefix("torch.")
    backend = _backend(lm)
    target = _target(tokenizer)
    sequences = [r.tokens for r in valid_records(target, PER_SPLIT)]

    def one(t, candidates: int = 3, on=backend):
        return _timed(
            lambda: asyncio.run(explain(on, t, "bench neuron", candidates, per_split=PER_SPLIT))
        )

    one(target)  # warm: the shared beginnings' caches, first allocations
    times = [one(target) for _ in range(3)]
    seconds, cpu = median([t[0] for t in times]), median([t[1] for t in times])
    messages = explanation_messages(train_records(target, PER_SPLIT))
    gen = _timed(lambda: lm.generate(messages, 3, 40, 1.0, 1.0, 0))
    sim = _timed(lambda: lm.simulate("pronouns", sequences))
    single = one(target, candidates=1)
    log(
        f"explain: one neuron ({dtype}) {seconds:.2f} s ({cpu:.2f} CPU s), generation "
        f"{gen[0]:.2f} s, one simulation {sim[0]:.2f} s, one candidate {single[0]:.2f} s"
    )
    result.rows.append(
        Row("explain", f"one neuron explained and scored (explainer `embedded`: {dtype}), 3 "
            f"candidates, {len(sequences)} sequences, {threads} thread(s): {seconds:.1f} s "
            f"({cpu:.1f} CPU s); generating {gen[0]:.1f} s, simulating one {sim[0]:.1f} s",
            f"goal {GOAL_S:g} s", GOAL_S / seconds, 1.0)
    )  # fmt: skip
    result.rows.append(
        Row("explain", f"the same, one candidate (--candidates 1): {single[0]:.1f} s "
            f"({single[1]:.1f} CPU s)", f"goal {GOAL_S:g} s", GOAL_S / single[0], 1.0)
    )  # fmt: skip

    full = LocalLM(model, tokenizer, EMBEDDED_MODEL, dtype="float32")
    one(target, on=_backend(full))  # warm
    in_fp32 = one(target, on=_backend(full))
    log(f"explain: one neuron in float32 {in_fp32[0]:.2f} s ({in_fp32[1]:.2f} CPU s)")
    result.rows.append(
        Row("explain", f"the same in float32 (--explainer embedded-float32), 3 candidates: "
            f"{in_fp32[0]:.1f} s ({in_fp32[1]:.1f} CPU s)", f"goal {GOAL_S:g} s",
            GOAL_S / in_fp32[0], None)
    )  # fmt: skip

    prompts = [lm.encode_simulation(simulation_prompt("pronouns", s)) for s in sequences]
    n_tokens = sum(len(ids) for ids, _ in prompts)
    length = max(len(ids) for ids, _ in prompts)
    batch = torch.zeros((len(prompts), length), dtype=torch.long)
    mask = torch.zeros_like(batch)
    for b, (ids, _) in enumerate(prompts):
        batch[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1

    def bare() -> float:
        began = time.perf_counter()
        with torch.inference_mode():
            lm.model.get_decoder()(input_ids=batch, attention_mask=mask, use_cache=False)
        return time.perf_counter() - began

    def simulate() -> float:
        began = time.perf_counter()
        lm.simulate("pronouns", sequences)
        return time.perf_counter() - began

    bare(), simulate()
    bares, sims = [], []
    for _ in range(3):
        bares.append(bare())
        sims.append(simulate())
    ratio = median(bares) / median(sims)
    sim_rate, bare_rate = n_tokens / median(sims), n_tokens / median(bares)
    log(f"explain: simulator {sim_rate:.0f} tokens/s, bare forward {bare_rate:.0f} tokens/s")
    result.rows.append(
        Row("explain", f"simulator, {len(prompts)} prompts, {n_tokens} tokens, {threads} "
            f"thread(s): {sim_rate:.0f} tokens/s", f"bare forward pass: {bare_rate:.0f} tokens/s",
            ratio, SIM_TARGET)
    )  # fmt: skip

    count = int(os.environ.get("BENCH_EXPLAIN_NEURONS", "100"))
    began = time.perf_counter()
    scores = [one(_target(tokenizer, seed=i % 5))[2][0].get_preferred_score() for i in range(count)]
    wall = time.perf_counter() - began
    log(f"explain: {count} neurons in {wall:.0f} s")
    result.rows.append(
        Row("explain", f"{count} neurons explained one after another, {threads} thread(s): "
            f"{wall:.0f} s ({wall / count:.1f} s each)", "none", None)
    )  # fmt: skip
    result.details = {
        "threads": threads,
        "one_neuron_s": [t[0] for t in times],
        "one_neuron_cpu_s": [t[1] for t in times],
        "generation_s": gen[0],
        "one_simulation_s": sim[0],
        "one_candidate_s": single[0],
        "dtype": dtype,
        "one_neuron_float32_s": in_fp32[0],
        "one_neuron_float32_cpu_s": in_fp32[1],
        "simulator_s": sims,
        "bare_s": bares,
        "prompt_tokens": n_tokens,
        "batch_neurons": count,
        "batch_wall_s": wall,
        "batch_best_scores": scores,
    }
    return result
