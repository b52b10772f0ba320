"""The collated file and every route's answer are what they were when golden.json was written:
a re-cut of the code must not change them (floats to float32 rounding; /datasets may only gain
fields)."""

from __future__ import annotations

import json
import math

import pytest

from tests.golden.answers import GOLDEN, answers


def same(got, want, where: str = "") -> list[str]:
    """Where got differs from want; floats are compared to a relative 1e-5."""
    if isinstance(want, dict) and isinstance(got, dict):
        problems = [f"{where}.{k}: missing" for k in want if k not in got]
        problems += [f"{where}.{k}: unexpected" for k in got if k not in want]
        for k in want.keys() & got.keys():
            problems += same(got[k], want[k], f"{where}.{k}")
        return problems
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(got)} items, expected {len(want)}"]
        return [
            p
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for p in same(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            return []
    elif got == want and type(got) is type(want):
        return []
    return [f"{where}: {got!r}, expected {want!r}"]


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    from registry import registry as store

    saved = dict(store.NEURON_DATASET_METADATA_REGISTRY), dict(store.MODEL_REGISTRY)
    try:
        return answers(tmp_path_factory.mktemp("golden"))
    finally:  # a module fixture: leave the registry as the other tests expect it
        store.NEURON_DATASET_METADATA_REGISTRY.clear()
        store.NEURON_DATASET_METADATA_REGISTRY.update(saved[0])
        store.MODEL_REGISTRY.clear()
        store.MODEL_REGISTRY.update(saved[1])


def test_collated_file_is_unchanged(now, golden):
    assert same(now["metadata"], golden["metadata"], "metadata") == []
    assert same(now["rows"], golden["rows"], "rows") == []


def test_every_route_answers_as_before(now, golden):
    assert [r["request"] for r in now["routes"]] == [r["request"] for r in golden["routes"]]
    for got, want in zip(now["routes"], golden["routes"], strict=True):
        where = " ".join(str(p) for p in want["request"][:2])
        assert got["status"] == want["status"], where
        body = got["body"]
        if want["request"][1].startswith("/datasets"):  # shape fields may be added
            body = [
                {k: d[k] for k in w if k in d} for d, w in zip(body, want["body"], strict=False)
            ]
        assert same(body, want["body"], where) == []
