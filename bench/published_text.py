"""Figure 7: a cold OLMo-7B neuron page's example texts (16 examples × 4 quadrants) through a
local Hub at 50 ms a request, against downloading the corpus with `datasets`.

The Hub serves the records' full-size replica (figure 6), a replica of sjgerstner/dolma-small
(45,736 documents of up to about 1,000 tokens of a 50,000-word vocabulary, `text`, `input_ids`
and `attention_mask`, one
shard of 1,000-row groups as older `datasets` versions wrote; made once under .cache/bench), and
OLMo's tokenizer without weights. The server asks what the viewer asks
(`?context=12&activations=true`); the model (28 GB) is over its budget, so each example shows its
document's opening and the record says so.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FigureResult, Row, environment, log
from bench.published import LATENCY_S, REPO_ID
from bench.published import replica as records_replica
from bench.serving import Server, client_session, loopback_env

CORPUS_ID = "sjgerstner/dolma-small"
CORPUS = Path(__file__).parents[1] / ".cache" / "bench" / "dolma-replica"
TOKENIZER = Path(__file__).parents[1] / ".cache" / "bench" / "olmo-tokenizer"
DOCUMENTS = 45_736
VOCABULARY = 50_000  # OLMo's is 50,280: ids as hard to compress as real ones
PAGE = "/neuron_record/olmo-7b/mlp_post_act/20/5000"

BASELINE = """
import json, sys, time
began = time.perf_counter()
import datasets
datasets.disable_progress_bars()
corpus = datasets.load_dataset(sys.argv[1], split="train")
indices = json.loads(sys.argv[2])
texts = [corpus[i]["text"] for i in indices]
print(json.dumps({"seconds": time.perf_counter() - began, "documents": len(texts)}))
"""


def corpus_replica() -> Path:
    stamp = CORPUS / "made.json"
    if not stamp.exists():
        from tests.corpus_replica import write_corpus

        log(f"published_text: writing a dolma-small replica ({DOCUMENTS} documents)")
        shutil.rmtree(CORPUS, ignore_errors=True)
        began = time.perf_counter()
        write_corpus(
            CORPUS, DOCUMENTS, shards=1, rows_per_group=1000, max_words=1000,
            attention_mask=True, vocabulary=VOCABULARY,
        )  # fmt: skip
        stamp.write_text(json.dumps({"documents": DOCUMENTS, "s": time.perf_counter() - began}))
    if not (TOKENIZER / "config.json").exists():
        from tests.corpus_replica import write_tokenizer_repo

        TOKENIZER.mkdir(parents=True, exist_ok=True)
        write_tokenizer_repo(TOKENIZER, VOCABULARY)
    return CORPUS


async def _get(server: Server, path: str) -> tuple[float, dict]:
    async with client_session(1) as session:
        began = time.perf_counter()
        async with session.get(server.url + path) as response:
            body = await response.json()
        return time.perf_counter() - began, body


def run() -> FigureResult:
    from tests.hub import FakeHub

    result = FigureResult("published_text")
    records, corpus = records_replica(), corpus_replica()
    corpus_size = sum(p.stat().st_size for p in (corpus / "data").glob("*.parquet"))
    hub = FakeHub(content_hashes=False)
    hub.add_repo("dataset", REPO_ID, str(records))
    hub.add_repo("dataset", CORPUS_ID, str(corpus))
    hub.add_repo("model", "allenai/OLMo-7B-0424-hf", str(TOKENIZER))
    hub.latency_s = LATENCY_S
    hub.start()
    home = Path(tempfile.mkdtemp(prefix="bench-published-text-"))
    try:
        with environment(
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_OFFLINE="0",
            NEURONS_HOME=str(home / "neurons"),
            HF_HOME=str(home / "hf-home"),
        ):
            with Server() as server:
                asyncio.run(_get(server, PAGE))  # the summary first, as the viewer asks
                mark, sent = len(hub.log), hub.bytes_sent
                before = dict(hub.bytes_by_path)
                seconds, body = asyncio.run(_get(server, PAGE + "?context=12&activations=true"))
                by_file = {
                    path: n - before.get(path, 0)
                    for path, n in hub.bytes_by_path.items()
                    if n != before.get(path, 0)
                }
            corpus_reads = [e for e in hub.log[mark:] if f"/{CORPUS_ID}/resolve/" in e[1]]
            tokenizer_reads = [e for e in hub.log[mark:] if "/allenai/" in e[1]]
            texts_bytes = hub.bytes_sent - sent  # the summary was read before `mark`
            examples = [e for q in body["quadrants"] for e in q["examples"]["hook_post"]]
            shown = [e for e in examples if e.get("tokens")]
            indices = sorted({e["documentIndex"] for e in examples})
            log(f"published_text: page texts {seconds:.2f} s; running the baseline")
            env = loopback_env() | {
                "HF_ENDPOINT": hub.endpoint,
                "HF_HUB_OFFLINE": "0",
                "HF_HOME": str(home / "hf-baseline"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
            }
            done = subprocess.run(
                [sys.executable, "-c", BASELINE, CORPUS_ID, json.dumps(indices)],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"the baseline failed: {done.stderr.strip().splitlines()[-1:]}")
            baseline = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        hub.stop()
        shutil.rmtree(home, ignore_errors=True)
    result.rows.append(
        Row(
            "published_text",
            f"a cold neuron page's texts: {len(shown)} of {len(examples)} examples "
            f"({len(indices)} documents) in {seconds:.2f} s, {len(corpus_reads)} corpus "
            f"requests (footer included), {texts_bytes / 1e6:.1f} MB with the tokenizer's files",
            f"datasets.load_dataset of the corpus ({corpus_size / 1e6:.0f} MB): "
            f"{baseline['seconds']:.1f} s",
            baseline["seconds"] / seconds,
        )
    )
    result.details = {
        "seconds": seconds,
        "examples": len(examples),
        "shown": len(shown),
        "documents": len(indices),
        "corpus_requests": len(corpus_reads),
        "tokenizer_requests": len(tokenizer_reads),
        "bytes": texts_bytes,
        "corpus_bytes": corpus_size,
        "baseline_s": baseline["seconds"],
        "context_note": body.get("contextNote"),
        "bytes_by_file": by_file,
    }
    return result
