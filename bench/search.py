"""Figure 9: finding neurons.

Prompt search over all 30 layers of SmolLM2-135M against one bare forward pass of its base
model on the same tokens (the two alternate, 256-token Shakespeare passages); goal: at most
1.2× the forward pass's time.

Token search on a full-size synthetic index (352,256 neurons, OLMo-7B's 32 × 11,008, × 4
quadrants × 16 examples: 22.5 M entries of one hook, token ids drawn from a Zipf law over a
50,280-token vocabulary, as words are), memory-mapped as the server maps it: p50 / p99 over
tokens drawn from those present, and the most frequent tokens alone; goal: p50 ≤ 5 ms.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import EMBEDDED_MODEL, FigureResult, Row, log, median, ms, percentile
from bench.live import make_texts
from registry.vocabulary import QUADRANTS as QUADRANT_NAMES

PAIRS = 12
PROMPT_TARGET = 1 / 1.2  # forward time / search time
TOP = 20
LAYERS, NEURONS, QUADRANTS, K = 32, 11_008, 4, 16
VOCAB = 50_280
QUERIES = 400
TOKEN_GOAL_S = 0.005


def _prompt(result: FigureResult) -> None:
    import torch

    from activations.models.live import ModelRunner
    from activations.search.prompt import search_prompt
    from registry import get_model

    runner = ModelRunner(get_model(EMBEDDED_MODEL))
    texts = make_texts(runner.tokenizer, PAIRS + 1)
    base = runner._model.base_model

    def forward(ids: list[int]) -> float:
        began = time.perf_counter()
        with torch.inference_mode():
            base(input_ids=torch.tensor([ids]), use_cache=False)
        return time.perf_counter() - began

    def search(text: str) -> tuple[float, list[int]]:
        began = time.perf_counter()
        found = search_prompt(runner, text, top=TOP)
        return time.perf_counter() - began, found.token_ids

    search(texts[0])  # warm: first calls allocate
    forward(runner.tokens.encode(texts[0]))
    searches, forwards = [], []
    for text in texts[1:]:
        seconds, ids = search(text)
        searches.append(seconds)
        forwards.append(forward(ids))
    ratio = median([f / s for f, s in zip(forwards, searches, strict=True)])
    tokens = len(runner.tokens.encode(texts[1]))
    log(f"search: prompt search {ms(median(searches))}, bare forward {ms(median(forwards))}")
    result.rows.append(
        Row("search", f"prompt search, 30 layers, top {TOP}, {tokens} tokens: "
            f"{ms(median(searches))}", f"bare forward pass: {ms(median(forwards))}",
            ratio, PROMPT_TARGET)
    )  # fmt: skip
    result.details["prompt"] = {"search_s": searches, "forward_s": forwards, "tokens": tokens}


def synthetic_index(folder: Path) -> Path:
    """A full-size index of one hook, written as collation writes one."""
    import json

    import pyarrow as pa

    from activations.search.token_index import METADATA_KEY, SCHEMA, write_token_index

    rng = np.random.default_rng(0)
    n = LAYERS * NEURONS * QUADRANTS * K
    unit = np.repeat(np.arange(LAYERS * NEURONS, dtype=np.int64), QUADRANTS * K)
    token = np.minimum(rng.zipf(1.2, n) - 1, VOCAB - 1).astype(np.int32)
    permutation = rng.permutation(VOCAB).astype(np.int32)  # frequent ids are not the low ids
    token = permutation[token]
    order = np.lexsort((unit, token))
    columns = {
        "hook": np.zeros(n, np.int8),
        "token": token[order],
        "layer": (unit[order] // NEURONS).astype(np.int16),
        "neuron": (unit[order] % NEURONS).astype(np.int32),
        "quadrant": np.tile(np.repeat(np.arange(QUADRANTS, dtype=np.int8), K), LAYERS * NEURONS)[
            order
        ],
        "value": rng.standard_normal(n).astype(np.float32)[order],
    }
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in SCHEMA}, SCHEMA)
    metadata = {"version": 1, "hooks": {"hook_post": [0, n]}, "records": [],
                "quadrants": list(QUADRANT_NAMES), "unplaced": 0}  # fmt: skip
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})
    written = write_token_index(table, str(folder / "records.parquet"))
    assert written is not None
    return written


def _token(result: FigureResult) -> None:
    from activations.search.token_index import TokenIndex

    folder = Path(tempfile.mkdtemp(prefix="bench-token-index-"))
    try:
        began = time.perf_counter()
        path = synthetic_index(folder)
        log(f"search: synthetic index of {path.stat().st_size / 2**20:.0f} MB in "
            f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        began = time.perf_counter()
        index = TokenIndex.open(path)
        opened = time.perf_counter() - began
        drawn_from = index.columns["token"]
        present, counts = np.unique(drawn_from, return_counts=True)
        rng = np.random.default_rng(1)
        drawn = rng.choice(present, QUERIES).tolist()
        frequent = present[np.argsort(-counts)[:10]].tolist()

        def timed(tokens: list[int]) -> list[float]:
            seconds = []
            for token in tokens:
                began = time.perf_counter()
                index.query("hook_post", token, TOP)
                seconds.append(time.perf_counter() - began)
            return seconds

        timed(drawn[:20])  # the pages the queries touch, mapped in
        times, worst = timed(drawn), timed(frequent)
        p50, p99 = median(times), percentile(times, 99)
        top_share = counts.max() / counts.sum()
        result.rows.append(
            Row("search", f"token search, full-size synthetic index ({len(drawn_from):,} entries)"
                f": p50 {ms(p50)}, p99 {ms(p99)}", f"goal p50 {ms(TOKEN_GOAL_S)}",
                TOKEN_GOAL_S / p50, 1.0)
        )  # fmt: skip
        result.rows.append(
            Row("search", f"the same, the 10 most frequent tokens ({top_share:.1%} of entries "
                f"the first): p50 {ms(median(worst))}, max {ms(max(worst))}", "—", None)
        )  # fmt: skip
        result.details["token"] = {
            "open_s": opened, "p50_s": p50, "p99_s": p99, "frequent_s": worst,
            "distinct_tokens": len(present), "index_mb": path.stat().st_size / 2**20,
        }  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run() -> FigureResult:
    result = FigureResult("search")
    _token(result)
    _prompt(result)
    return result
