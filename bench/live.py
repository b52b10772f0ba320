"""Figure 5: live activations (`POST /activations`) against a bare forward pass of the same text.

The server runs in its own process; the bare forward pass runs here, on the same model, and the
two alternate so that neither runs while the other does. Then concurrent clients show what the
server's micro-batching makes of many requests at once, against the same bare forward rate.
"""

from __future__ import annotations

import asyncio
import time

import torch

from bench.common import EMBEDDED_MODEL, FigureResult, Row, log, median, ms
from bench.serving import Call, Server, client_session, run_load

TEXT_TOKENS = 256
LAYER = 15
NEURONS = [3, 141, 592, 1024]
PAIRS = 12
LEVELS = {1: 8, 4: 16, 16: 48}  # concurrent clients: requests sent
TARGET = 0.8


def make_texts(tokenizer, count: int) -> list[str]:
    """`count` Shakespeare passages of about TEXT_TOKENS tokens each."""
    from activations.corpus import shakespeare_plays

    texts: list[str] = []
    for _, play in shakespeare_plays():
        ids = tokenizer(play[:200_000], add_special_tokens=False).input_ids
        for start in range(0, len(ids) - TEXT_TOKENS, TEXT_TOKENS):
            text = tokenizer.decode(ids[start : start + TEXT_TOKENS])
            if abs(len(tokenizer(text).input_ids) - TEXT_TOKENS) <= 4:
                texts.append(text)
            if len(texts) == count:
                return texts
    return texts


def _call(text: str) -> Call:
    body = {"model": EMBEDDED_MODEL, "text": text, "layer": LAYER, "neurons": NEURONS}
    return Call("/activations", body)


async def _measure(server: Server, model, tokenizer, texts: list[str]) -> dict:
    def forward(text: str) -> float:
        encoded = tokenizer([text], return_tensors="pt")
        began = time.perf_counter()
        with torch.inference_mode():
            model.base_model(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                use_cache=False,
            )
        return time.perf_counter() - began

    out: dict = {"request_s": [], "forward_s": [], "level_forward_s": [], "levels": {}}
    async with client_session(max(LEVELS)) as session:
        began = time.perf_counter()
        await run_load(session, server.url, [_call(texts[0])], 1)  # loads the model
        out["server_first_request_s"] = time.perf_counter() - began
        forward(texts[0])
        for i in range(PAIRS):
            text = texts[1 + i]
            request = await run_load(session, server.url, [_call(text)], 1)
            out["request_s"].append(request.latencies[0])
            out["forward_s"].append(forward(text))
        offset = 1 + PAIRS
        for clients, count in LEVELS.items():
            calls = [_call(t) for t in texts[offset : offset + count]]
            offset += count
            health = await (await session.get(server.url + "/health")).json()
            load = await run_load(session, server.url, calls, clients)
            after = await (await session.get(server.url + "/health")).json()
            batches = after["liveBatches"] - health["liveBatches"]
            out["levels"][clients] = {
                "requests": len(load.latencies),
                "wall_s": load.wall,
                "per_second": load.per_second,
                "tokens_per_second": load.per_second * TEXT_TOKENS,
                "mean_batch": len(load.latencies) / batches if batches else None,
                "p50_s": median(load.latencies),
                "errors": load.errors[:5],
            }
            out["level_forward_s"].append(forward(texts[offset - 1]))  # the machine drifts
            log(f"live: {clients} concurrent: {load.per_second:.2f} req/s")
    return out


def run() -> FigureResult:
    from activations.models.loading import load_model
    from registry import get_model

    result = FigureResult("live")
    model, tokenizer = load_model(get_model(EMBEDDED_MODEL))
    texts = make_texts(tokenizer, 1 + PAIRS + sum(LEVELS.values()))
    log(f"live: {len(texts)} texts of ~{TEXT_TOKENS} tokens; starting the server")
    with Server() as server:
        out = asyncio.run(_measure(server, model, tokenizer, texts))
    request, forward = median(out["request_s"]), median(out["forward_s"])
    ratio = median([f / r for f, r in zip(out["forward_s"], out["request_s"], strict=True)])
    bare = TEXT_TOKENS / median(out["forward_s"] + out["level_forward_s"])
    result.rows.append(
        Row(
            "live",
            f"POST /activations, 1 text: {TEXT_TOKENS / request:.0f} tok/s ({ms(request)})",
            f"bare forward: {TEXT_TOKENS / forward:.0f} tok/s ({ms(forward)})",
            ratio,
            TARGET,
        )
    )
    for clients, level in out["levels"].items():
        batch = level["mean_batch"]
        errors = f", {len(level['errors'])} errors" if level["errors"] else ""
        result.rows.append(
            Row(
                "live",
                f"{clients} client{'s' * (clients > 1)}: {level['per_second']:.2f} req/s, "
                f"{level['tokens_per_second']:.0f} tok/s (mean batch "
                f"{batch:.1f}{errors})"
                if batch
                else f"{clients} client{'s' * (clients > 1)}: no batches{errors}",
                f"bare forward: {bare:.0f} tok/s",
                level["tokens_per_second"] / bare,
            )
        )
    result.details = out
    return result
