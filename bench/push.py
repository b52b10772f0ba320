"""Figure `push`: a full-size collated file (OLMo-7B's shape: 32 layers x 11,008 neurons =
352,256 rows, our schema, random totals; made once, kept under .cache/bench) pushed by
`neurons push` to the local Hub with its upload endpoints (tests/hub_upload.py, LFS, no Xet):
seconds from the file to the commit and bytes uploaded, by default (the file its own shard:
hashed, uploaded, committed) and split into 500 MB shards (rewritten first). Baseline: what a
user would reach for, `datasets`' `Dataset.push_to_hub` of the same table (loaded beforehand,
not timed) to the same Hub. Each push runs in a process of its own (huggingface_hub reads
HF_ENDPOINT at import; the Hub's threads stay out of the pushing interpreter). Goal: no slower
(ratio >= 1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import FigureResult, Row, environment, log

FILE = Path(__file__).parents[1] / ".cache" / "bench" / "push-full.parquet"
LAYERS, NEURONS, N_DOCUMENTS, K = 32, 11008, 45_736, 16
SPLIT_BYTES = 500 * 2**20  # --max-shard-mb 500, as push_to_hub's default shard size

OURS = """
import json, sys, time
from activations.publish import push
began = time.perf_counter()
options = {} if sys.argv[3] == "none" else {"max_shard_bytes": int(sys.argv[3])}
result = push(sys.argv[1], sys.argv[2], **options)
print(json.dumps({"seconds": time.perf_counter() - began, "files": len(result.files)}))
"""

BASELINE = """
import json, sys, time
from datasets import Dataset
table = Dataset.from_parquet(sys.argv[1])
began = time.perf_counter()
table.push_to_hub(sys.argv[2], token="hf_write")
print(json.dumps({"seconds": time.perf_counter() - began, "rows": table.num_rows}))
"""


def write_full_size(path: Path) -> None:
    """Layer by layer (one layer's table in memory at a time), row groups of 128."""
    import pyarrow.parquet as pq
    import torch

    from activations.collate.accumulator import LayerAccumulator
    from activations.collate.writer import accumulators_to_table
    from activations.records.schema import GLU_LAYOUT, KEY_COLUMNS

    rng = np.random.default_rng(0)
    n_tokens = 20_000_000
    metadata = {
        "schema_version": "2", "model": "full-size", "corpus": "random",
        "documents": [0, N_DOCUMENTS],
        "n_documents": N_DOCUMENTS, "n_tokens": n_tokens, "top_k": K, "max_tokens": 1024,
        "layers": list(range(LAYERS)), "model_layers": LAYERS, "all_layers": True,
        "n_neurons": NEURONS, "layout": "glu", "note": "random totals, for benchmarks",
    }  # fmt: skip
    tmp = path.with_suffix(".tmp")
    writer = None
    for layer in range(LAYERS):
        acc = LayerAccumulator(GLU_LAYOUT, NEURONS, K)
        shares = rng.dirichlet(np.ones(4), size=NEURONS).T
        acc.counts = torch.from_numpy((shares * n_tokens / LAYERS).astype(np.int64))
        acc.sums = torch.from_numpy(rng.normal(size=tuple(acc.sums.shape)) * 100.0)
        shape = tuple(acc.top_value.shape)
        scores = -np.sort(-rng.gamma(2.0, 1.0, size=shape), axis=1).astype(np.float32)
        acc.top_value, acc.top_score = torch.from_numpy(scores), torch.from_numpy(scores)
        acc.top_doc = torch.from_numpy(rng.integers(0, N_DOCUMENTS, size=shape))
        acc.top_position = torch.from_numpy(rng.integers(0, 1024, size=shape))
        table = accumulators_to_table({layer: acc}, n_tokens, metadata)
        if writer is None:
            writer = pq.ParquetWriter(
                tmp, table.schema, compression="zstd", use_dictionary=list(KEY_COLUMNS),
                write_statistics=list(KEY_COLUMNS), write_page_checksum=True,
            )  # fmt: skip
        writer.write_table(table, row_group_size=128)
    writer.close()
    tmp.replace(path)


def run() -> FigureResult:
    from tests.hub_upload import UploadHub

    if not FILE.exists():
        FILE.parent.mkdir(parents=True, exist_ok=True)
        log(f"push: writing a full-size file ({LAYERS * NEURONS} rows) to {FILE} (once)")
        write_full_size(FILE)
    size = FILE.stat().st_size
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        hub = UploadHub(str(Path(tmp) / "hub")).start()
        env = dict(
            HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_write", HF_HUB_OFFLINE="0",
            HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1", NEURONS_HOME=str(Path(tmp) / "home"),
            HF_HOME=str(Path(tmp) / "hf-home"),
        )  # fmt: skip
        env["PYTHONPATH"] = str(Path(__file__).parents[1])
        try:
            with environment(**env):
                log("push: neurons push (the file its own shard: hashed, uploaded, committed)")
                ours = _timed(OURS, str(FILE), "bench/ours", "none")
                ours_bytes = _uploaded(hub)
                log("push: neurons push --max-shard-mb 500 (shards written, then the same)")
                split = _timed(OURS, str(FILE), "bench/split", str(SPLIT_BYTES))
                split_bytes = _uploaded(hub) - ours_bytes
                log("push: datasets' push_to_hub of the same table")
                theirs = _timed(BASELINE, str(FILE), "bench/theirs")
                theirs_bytes = _uploaded(hub) - ours_bytes - split_bytes
        finally:
            hub.stop()
    ours_s, split_s = ours["seconds"], split["seconds"]
    details = {
        "rows": LAYERS * NEURONS, "file_bytes": size, "ours_seconds": round(ours_s, 2),
        "ours_uploaded_bytes": ours_bytes, "ours_files": ours["files"],
        "split_seconds": round(split_s, 2), "split_uploaded_bytes": split_bytes,
        "split_files": split["files"],
        "push_to_hub_seconds": round(theirs["seconds"], 2),
        "push_to_hub_uploaded_bytes": theirs_bytes,
    }  # fmt: skip
    rows = [
        Row(
            "push",
            f"neurons push: {ours_s:.1f} s, {ours_bytes / 1e6:.0f} MB uploaded "
            f"({ours['files']} files, card included)",
            f"datasets push_to_hub: {theirs['seconds']:.1f} s, {theirs_bytes / 1e6:.0f} MB",
            theirs["seconds"] / ours_s,
            1.0,
        ),
        Row(
            "push",
            f"neurons push --max-shard-mb 500: {split_s:.1f} s, {split_bytes / 1e6:.0f} MB "
            f"uploaded ({split['files']} files: shards rewritten, card)",
            f"datasets push_to_hub: {theirs['seconds']:.1f} s, {theirs_bytes / 1e6:.0f} MB",
            theirs["seconds"] / split_s,
            1.0,
        ),
    ]
    return FigureResult("push", rows, details)


def _timed(script: str, *args: str) -> dict:
    """A push in a process of its own (as each library is used; the Hub's threads stay out of
    its interpreter): its own timing, read from its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.split(chr(10))[2]}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _uploaded(hub) -> int:
    """Bytes the Hub received: request bodies of its write endpoints (uploads, commits)."""
    return hub.bytes_received
