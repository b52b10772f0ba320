"""Figure `debugger`: TDB's debugger request and an intervention on the embedded model, each
against the bare passes it cannot do without.

- `POST /batched_tdb` as TDB's frontend sends it (a 64-token prompt, the logit difference of a
  target and a distractor, the top and bottom 10 nodes of every layer's neurons and heads by
  act × grad, activation, write norm and direct effect, with scored tokens and the top logits)
  against a bare forward pass plus a backward pass of the same logit difference to the
  residual stream (activation gradients, as the debugger needs; goal: at most 1.5× its time).
- `POST /intervene` (a neuron zeroed at every token; per token the top predictions before and
  after and the loss change) against two bare forward passes (goal: at most 1.2× their time).

The server runs in its own process; the bare passes run here on the same model, alternating
with the requests so that neither runs while the other does.
"""

from __future__ import annotations

import asyncio
import time

import torch

from bench.common import EMBEDDED_MODEL, FigureResult, Row, log, median, ms
from bench.serving import Call, Server, client_session, run_load

PROMPT_TOKENS = 64
TARGET, DISTRACTOR = " the", " a"
PAIRS = 6
LAYER, NEURON = 15, 592


def make_prompt(tokenizer) -> str:
    from activations.corpus import shakespeare_plays

    _, play = next(iter(shakespeare_plays()))
    ids = tokenizer(play[:20_000], add_special_tokens=False).input_ids
    for start in range(0, len(ids), 16):
        text = tokenizer.decode(ids[start : start + PROMPT_TOKENS])
        if len(tokenizer(text).input_ids) == PROMPT_TOKENS:
            return text
    raise RuntimeError("no 64-token passage")


def calls(prompt: str) -> tuple[Call, Call]:
    from tests.fixtures.tdb.frontend_requests import tdb_first_load

    tdb = tdb_first_load(prompt=prompt, targets=[TARGET], distractors=[DISTRACTOR])
    intervene = {"model": EMBEDDED_MODEL, "text": prompt, "layer": LAYER, "neuron": NEURON}
    return Call("/batched_tdb", tdb), Call("/intervene", intervene)


def bare_passes(model, tokenizer, prompt: str):
    ids = torch.tensor([tokenizer(prompt).input_ids])
    target = tokenizer(TARGET, add_special_tokens=False).input_ids[0]
    distractor = tokenizer(DISTRACTOR, add_special_tokens=False).input_ids[0]
    embed = model.get_input_embeddings()

    def forward_backward() -> float:
        began = time.perf_counter()
        inputs = embed(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=inputs, use_cache=False).logits[0, -1]
        torch.autograd.grad(logits[target] - logits[distractor], inputs)
        return time.perf_counter() - began

    def two_forwards() -> float:
        began = time.perf_counter()
        with torch.inference_mode():
            for _ in range(2):
                model(input_ids=ids, use_cache=False)
        return time.perf_counter() - began

    return forward_backward, two_forwards


async def _measure(server: Server, model, tokenizer, prompt: str) -> dict:
    tdb, intervene = calls(prompt)
    forward_backward, two_forwards = bare_passes(model, tokenizer, prompt)
    out: dict = {"tdb_s": [], "forward_backward_s": [], "intervene_s": [], "two_forwards_s": []}
    async with client_session(4) as session:
        began = time.perf_counter()
        first = await run_load(session, server.url, [tdb], 1)  # loads the model
        out["server_first_request_s"] = time.perf_counter() - began
        if first.errors:
            raise RuntimeError(f"/batched_tdb failed: {first.errors[0]}")
        await run_load(session, server.url, [intervene], 1)
        forward_backward(), two_forwards()
        for i in range(PAIRS):
            load = await run_load(session, server.url, [tdb], 1)
            out["tdb_s"].append(load.latencies[0])
            out["forward_backward_s"].append(forward_backward())
            load = await run_load(session, server.url, [intervene], 1)
            out["intervene_s"].append(load.latencies[0])
            out["two_forwards_s"].append(two_forwards())
            log(f"debugger: pair {i + 1}/{PAIRS}: {ms(out['tdb_s'][-1])} vs "
                f"{ms(out['forward_backward_s'][-1])}")  # fmt: skip
    return out


def run() -> FigureResult:
    from activations.models.loading import load_model
    from registry import get_model

    result = FigureResult("debugger")
    model, tokenizer = load_model(get_model(EMBEDDED_MODEL))
    model.eval()
    prompt = make_prompt(tokenizer)
    log(f"debugger: a {PROMPT_TOKENS}-token prompt; starting the server")
    with Server() as server:
        out = asyncio.run(_measure(server, model, tokenizer, prompt))
    pairs = {
        "tdb": ("tdb_s", "forward_backward_s", 1 / 1.5),
        "intervene": ("intervene_s", "two_forwards_s", 1 / 1.2),
    }
    texts = {
        "tdb": ("POST /batched_tdb, top 10 of every layer", "bare forward + backward"),
        "intervene": ("POST /intervene, a neuron zeroed", "two bare forward passes"),
    }
    for name, (subject, baseline, target) in pairs.items():
        ratio = median([b / s for s, b in zip(out[subject], out[baseline], strict=True)])
        result.rows.append(
            Row(
                "debugger",
                f"{texts[name][0]} ({PROMPT_TOKENS} tokens): {ms(median(out[subject]))}",
                f"{texts[name][1]}: {ms(median(out[baseline]))}",
                ratio,
                target,
            )
        )
    result.details = out
    return result
