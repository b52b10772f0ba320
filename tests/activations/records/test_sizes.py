"""Caches of answers are bounded by the bytes of what they keep: a record's weight is what it
takes in memory, as measured."""

from __future__ import annotations

import gc
import tracemalloc

import orjson

from activations.records.answers import GluNeuronRecord
from activations.records.sizes import deep_bytes


def heavy_record_json(tokens_each: int = 129) -> bytes:
    """A record as `?hooks=all&context=64&activations=true` answers it: 4 quadrants, 3 hooks,
    20 examples each, every one with its window of tokens and values."""
    example = {
        "value": 1.5, "documentIndex": 3, "position": 10, "windowStart": 0,
        "tokens": [f" tok{i}" for i in range(tokens_each)],
        "activations": {h: [i / 7 for i in range(tokens_each)] for h in ("pre", "in", "post")},
    }  # fmt: skip
    quadrant = {
        "name": "gate+_in+", "freq": 0.25, "count": 7, "means": {"hook_post": 0.1},
        "examples": {h: [example] * 20 for h in ("hook_pre", "hook_in", "hook_post")},
    }  # fmt: skip
    dataset = {
        "shortName": "x", "derivedScalarType": "mlp_post_act", "userVisibleName": "X",
        "neuronDatasetPath": "/x.parquet", "format": "glu_parquet",
    }  # fmt: skip
    record = {"dataset": dataset, "layer": 0, "neuron": 1, "hook": "hook_post",
              "quadrants": [quadrant] * 4}  # fmt: skip
    return orjson.dumps(record)


def test_a_records_weight_is_about_the_memory_it_takes():
    data = heavy_record_json()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        record = GluNeuronRecord.model_validate_json(data)
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    weight = deep_bytes(record)
    assert taken > 2 * 2**20  # a heavy record: megabytes
    assert 0.8 * taken <= weight <= 3 * taken, (weight, taken)


def test_a_record_without_text_weighs_about_what_it_takes():
    """A plain record (4 quadrants of 16 examples of numbers): its examples are weighed
    together, not one by one, and still about as they take."""
    example = {"value": 1.5, "documentIndex": 3, "position": 10}
    quadrant = {
        "name": "gate+_in+", "freq": 0.25, "count": 7, "means": {"hook_post": 0.1},
        "examples": {"hook_post": [example] * 16}, "histogram": list(range(49)),
    }  # fmt: skip
    dataset = {
        "shortName": "x", "derivedScalarType": "mlp_post_act", "userVisibleName": "X",
        "neuronDatasetPath": "/x.parquet", "format": "glu_parquet",
    }  # fmt: skip
    data = orjson.dumps(
        {
            "dataset": dataset,
            "layer": 0,
            "neuron": 1,
            "hook": "hook_post",
            "quadrants": [quadrant] * 4,
        }  # fmt: skip
    )
    records = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        records = [GluNeuronRecord.model_validate_json(data) for _ in range(20)]
        gc.collect()
        taken = (tracemalloc.get_traced_memory()[0] - before) / len(records)
    finally:
        tracemalloc.stop()
    weight = deep_bytes(records[0])
    assert 0.8 * taken <= weight <= 3 * taken, (weight, taken)
