"""A pushed dataset as others read it from the Hub: `datasets.load_dataset(repo)` with HF_ENDPOINT
set (a process of its own, as a user's: huggingface_hub reads the endpoint at import), with the
card's features and the file's rows, and GLUScope's reader over those rows (its row rule
`layer * d_mlp + neuron` and its column parser: test_published_readers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq

from activations.publish import push
from activations.records.schema import METADATA_KEY
from tests.activations.publish.test_push import identical, shard_bytes
from tests.activations.records.test_published_readers import (
    CASES,
    gluscope_reader,
    shown_average,
    shown_examples,
)

READ = """
import json, sys
from datasets import load_dataset
records = load_dataset(sys.argv[1], split="train")
json.dump({"features": records.features.to_dict(), "rows": records.to_list()}, sys.stdout)
"""


def load_in_a_process(repo_id: str, hub, tmp_path) -> dict:
    env = {
        **os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0", "HF_HOME": str(tmp_path / "reader-hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }  # fmt: skip
    env.pop("HF_TOKEN", None)  # a public dataset: read without one
    done = subprocess.run(
        [sys.executable, "-c", READ, repo_id], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_load_dataset_reads_the_card_features_and_the_rows(upload_hub, collated, tmp_path):
    from datasets import Features

    push(collated, "me/readers", max_shard_bytes=shard_bytes(collated, 3))
    got = load_in_a_process("me/readers", upload_hub, tmp_path)
    table = pq.read_table(collated)
    assert got["features"] == Features.from_arrow_schema(table.schema).to_dict()
    assert list(got["features"]) == table.column_names  # the card's order, then ours
    want = table.to_pylist()
    assert len(got["rows"]) == len(want)
    for g, w in zip(got["rows"], want, strict=True):
        assert all(identical(g[c], w[c]) for c in w), (w["layer"], w["neuron"])


def test_gluscope_reads_the_pushed_rows_right(upload_hub, collated, tmp_path):
    push(collated, "me/gluscope")
    rows = load_in_a_process("me/gluscope", upload_hub, tmp_path)["rows"]
    meta = json.loads(pq.read_schema(collated).metadata[METADATA_KEY])
    d_mlp, n_docs = meta["n_neurons"], meta["n_documents"]
    for layer in meta["layers"]:
        for neuron in (0, 7, d_mlp - 1):
            parsed = gluscope_reader(rows, layer, neuron, d_mlp)
            assert parsed["row"] == (layer, neuron)
            row = rows[layer * d_mlp + neuron]
            for case in CASES:
                assert parsed[(case, "freq")] == row[f"{case}_freq"]
                # their "Avg" is our mean: no column of ours ends in "_sum"
                average = shown_average(parsed, case, "hook_post")
                assert identical(average, row[f"{case}_hook_post_mean"])
                shown = shown_examples(parsed, case, "hook_post")
                assert all(0 <= d < n_docs for d in shown)
                assert set(shown) <= set(row[f"{case}_hook_post_max_indices"])
