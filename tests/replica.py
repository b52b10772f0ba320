"""Replicas of the published OLMo-7B-0424 neuron-activations dataset, written as its authors
wrote it: `datasets.Dataset.from_dict(...)` in the card's exact schema, pushed the way
`push_to_hub` writes (contiguous shards `data/train-0000i-of-0000N.parquet`, each written by
`Dataset.to_parquet` with the library's row-group size unless one is given), with their
conventions: layer-major rows, values signed as the quadrant, and where fewer than 16 documents
reach a quadrant, slots of value 0.0 holding real document indices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CARD = Path(__file__).parent / "fixtures" / "olmo_card_columns.json"
N_DOCUMENTS = 45_736  # rows of sjgerstner/dolma-small
K = 16


def card_columns() -> list[tuple[str, str]]:
    return [tuple(c) for c in json.loads(CARD.read_text())["columns"]]


def features():
    from datasets import Features, List, Value

    kinds = {
        "int64": Value("int64"),
        "float32": Value("float32"),
        "list<float32>": List(Value("float32")),
        "list<int64>": List(Value("int64")),
    }
    return Features({name: kinds[kind] for name, kind in card_columns()})


def relevant_sign(quadrant: str, hook: str) -> float:
    """The sign every value of a quadrant has (GLUScope's RELEVANT_SIGNS)."""
    gate = 1.0 if quadrant.startswith("gate+") else -1.0
    in_ = 1.0 if quadrant.endswith("+") else -1.0
    return {"hook_pre": gate, "hook_pre_linear": in_, "swish": -1.0, "hook_post": gate * in_}[hook]


def replica_columns(
    layers: int, neurons: int, seed: int = 0, empty_every: int = 7, n_documents: int = N_DOCUMENTS
) -> dict:
    """Column name -> values of every row, layer-major. Every `empty_every`-th neuron has a
    quadrant that fewer than 16 documents reach (the rest of its slots: 0.0, a real index)."""
    rng = np.random.default_rng(seed)
    rows = layers * neurons
    data: dict = {}
    for name, kind in card_columns():
        if name == "layer":
            data[name] = np.repeat(np.arange(layers, dtype=np.int64), neurons)
        elif name == "neuron":
            data[name] = np.tile(np.arange(neurons, dtype=np.int64), layers)
        elif kind == "float32":
            data[name] = rng.random(rows, dtype=np.float32) / 4
        elif kind == "list<float32>":
            sign = relevant_sign(name[:9], name[10 : -len("_max_values")])
            magnitude = -np.sort(-rng.random((rows, K), dtype=np.float32) * 3, axis=1)
            values = (sign * magnitude).astype(np.float32)
            values[::empty_every, K // 2 :] = 0.0
            data[name] = values
        else:
            data[name] = rng.integers(0, n_documents, (rows, K), dtype=np.int64)
    return data


def write_replica(
    folder: Path,
    layers: int,
    neurons: int,
    shards: int = 3,
    rows_per_group: int | None = None,
    seed: int = 0,
    n_documents: int = N_DOCUMENTS,
) -> dict:
    """The repo folder (README.md and data/train-*.parquet); returns the columns written."""
    from datasets import Dataset

    columns = replica_columns(layers, neurons, seed, n_documents=n_documents)
    dataset = Dataset.from_dict(
        {k: list(v) if np.ndim(v) == 2 else v for k, v in columns.items()}, features=features()
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for index in range(shards):
        shard = dataset.shard(num_shards=shards, index=index, contiguous=True)
        path = folder / "data" / f"train-{index:05d}-of-{shards:05d}.parquet"
        shard.to_parquet(str(path), batch_size=rows_per_group)  # None: the library's choice
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# a replica for tests\n")
    return columns


def expected_row(columns: dict, layer: int, neuron: int, neurons: int) -> dict:
    """The replica's row of one neuron, as plain Python values."""
    row = layer * neurons + neuron
    return {
        name: values[row].tolist() if hasattr(values[row], "tolist") else values[row]
        for name, values in columns.items()
    }
