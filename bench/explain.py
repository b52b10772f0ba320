"""Figure `explain`: neuron-explainer's method with the embedded SmolLM2-135M-Instruct, in
process, on this CPU.

- one neuron explained and scored (3 candidates of up to 40 tokens, each simulated on the
  valid records: 2 top, 2 random, 25 tokens each), against the goal of 5 s;
- the simulator's tokens per second (prompt tokens of 8 sequences' all-at-once prompts, one
  pass over what follows their shared, cached beginning) against a bare forward pass of the
  base model over the same whole prompts; goal ≥ 0.8×;
- a batch of neurons explained one after another (BENCH_EXPLAIN_NEURONS, 100 by default):
  its wall time.

The neuron is synthetic (Shakespeare passages, the neuron firing on pronouns), so that the
figure needs no collated dataset.
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

    texts = make_texts(tokenizer, 12 + seed)[seed:]
    records = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:25]
        tokens = [tokenizer.decode([i]) for i in ids]
        values = [3.0 + len(t) if t in PRONOUNS else 0.0 for t in tokens]
        records.append(ActivationRecord(tokens=tokens, activations=values))
    ranked = sorted(records, key=lambda r: -max(r.activations))
    return Target(None, ranked[:8], ranked[8:] + ranked[:1])


def run() -> FigureResult:
    import torch

    from activations.explanations.backends import InProcessBackend
    from activations.explanations.local import LocalLM
    from activations.explanations.pipeline import explain
    from activations.explanations.prompts import simulation_prompt
    from activations.models.loading import load_model
    from registry import get_model

    result = FigureResult("explain")
    model, tokenizer = load_model(get_model(EMBEDDED_MODEL))
    lm = LocalLM(model, tokenizer, EMBEDDED_MODEL)

    async def on_thread(work):
        return await asyncio.to_thread(work, lm)

    backend = InProcessBackend(EMBEDDED_MODEL, on_thread)
    target = _target(tokenizer)

    def one(t) -> tuple[float, float | None]:
        began = time.perf_counter()
        found = asyncio.run(explain(backend, t, "bench neuron", candidates=3, max_sequences=4))
        return time.perf_counter() - began, found[0].get_preferred_score()

    one(target)  # warm: the shared prefix's cache, first allocations
    times = [one(target) for _ in range(2)]
    seconds = median([t for t, _ in times])
    log(f"explain: one neuron {seconds:.2f} s (best score {times[0][1]})")
    result.rows.append(
        Row("explain", f"one neuron explained and scored, 3 candidates: {seconds:.2f} s",
            f"goal {GOAL_S:g} s", GOAL_S / seconds, 1.0)
    )  # fmt: skip

    sequences = [r.tokens for r in target.top]
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
            model.get_decoder()(input_ids=batch, attention_mask=mask, use_cache=False)
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
        Row("explain", f"simulator, {len(prompts)} prompts, {n_tokens} tokens: "
            f"{sim_rate:.0f} tokens/s", f"bare forward pass: {bare_rate:.0f} tokens/s",
            ratio, SIM_TARGET)
    )  # fmt: skip

    count = int(os.environ.get("BENCH_EXPLAIN_NEURONS", "100"))
    began = time.perf_counter()
    scores = [one(_target(tokenizer, seed=i % 5))[1] for i in range(count)]
    wall = time.perf_counter() - began
    log(f"explain: {count} neurons in {wall:.0f} s")
    result.rows.append(
        Row("explain", f"{count} neurons explained one after another: {wall:.0f} s "
            f"({wall / count:.1f} s each)", "none", None)
    )  # fmt: skip
    result.details = {
        "one_neuron_s": [t for t, _ in times],
        "simulator_s": sims,
        "bare_s": bares,
        "prompt_tokens": n_tokens,
        "batch_neurons": count,
        "batch_wall_s": wall,
        "batch_best_scores": scores,
    }
    return result
