"""bench.explain_distribution on a dataset collated from a tiny Llama, a tiny chat model
explaining and simulating in process: one line per sampled neuron, the seeded sample, resumed
runs that keep what is done, and a summary that says what the lines say."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import registry
from activations.explanations import pipeline
from bench import explain_distribution
from registry.explanations import register_explainer
from tests.activation_server.conftest import register_tiny, tiny_dataset  # noqa: F401
from tests.tiny_chat import make_tiny_chat_model

KEYS = {"layer", "neuron", "explanation", "score", "baseline", "baseline_score", "seconds"}
NEVER_ACTIVE = {0, 1}  # tests/tiny.py: neuron 0's gate and neuron 1's in are exact zeros
SCORES = ("explanation", "top_tokens_baseline")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return make_tiny_chat_model(tmp_path_factory.mktemp("chat") / "chat", seed=4)


@pytest.fixture
def bench(tiny_dataset, chat_model, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Runs the figure as `python -m bench.explain_distribution ARGS` would (explained by the
    tiny chat model), counting the neurons explained; returns (summary printed, explained)."""
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    register_tiny(tiny_dataset)
    registry.register_model("tiny-chat", str(chat_model))
    register_explainer("tiny", "in_process", "tiny-chat")
    explained: list[str] = []
    real = pipeline.explain

    async def counted(backend, target, what, *args, **kwargs):
        explained.append(what)
        return await real(backend, target, what, *args, **kwargs)

    monkeypatch.setattr(pipeline, "explain", counted)

    def run(*args: str) -> tuple[dict, list[str]]:
        explained.clear()
        dataset = str(tiny_dataset["parquet"])
        argv = ["explain_distribution", "--dataset", dataset, "--explainer", "tiny", *args]
        monkeypatch.setattr(sys, "argv", [*argv, "--candidates", "1"])
        explain_distribution.main()
        printed = capsys.readouterr().out.splitlines()  # a line per neuron, then the summary
        start = len(printed) - printed[::-1].index("{") - 1
        return json.loads("\n".join(printed[start:])), list(explained)

    return run


def read_lines(path: Path) -> list[dict]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def neurons(lines: list[dict]) -> set[tuple[int, int]]:
    return {(line["layer"], line["neuron"]) for line in lines}


def shape(model: Path) -> tuple[int, int]:
    """(layers, neurons per layer) of the collated model, from its own config."""
    config = json.loads((model / "config.json").read_text())
    return config["num_hidden_layers"], config["intermediate_size"]


def test_a_line_per_sampled_neuron_with_both_scores(bench, tiny_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "dist.jsonl"
    summary, explained = bench("--sample", "4", "--seed", "0", "--out", str(out))
    lines = read_lines(out)
    assert len(lines) == 4 and len(neurons(lines)) == 4
    layers, per_layer = shape(tiny_dataset["model"])
    assert all(0 <= line["layer"] < layers and 0 <= line["neuron"] < per_layer for line in lines)
    active = [line for line in lines if line["neuron"] not in NEVER_ACTIVE]
    assert active and len(explained) == len(active)
    for line in lines:
        if line["neuron"] in NEVER_ACTIVE:  # nothing to explain: the line says only which
            assert set(line) == {"layer", "neuron"}
            continue
        assert set(line) == KEYS
        assert line["explanation"].strip() and line["baseline"].startswith("the tokens ")
        for key in ("score", "baseline_score"):  # a correlation, or None where undefined
            assert line[key] is None or (math.isfinite(line[key]) and -1 <= line[key] <= 1)
        assert line["seconds"] > 0
    assert summary == json.loads(out.with_suffix(".summary.json").read_text())


def test_the_sample_is_the_seeds(bench, tmp_path):
    first, again, other = (tmp_path / f"{name}.jsonl" for name in ("first", "again", "other"))
    bench("--sample", "3", "--seed", "7", "--out", str(first))
    bench("--sample", "3", "--seed", "7", "--out", str(again))
    bench("--sample", "3", "--seed", "8", "--out", str(other))
    assert neurons(read_lines(first)) == neurons(read_lines(again))
    assert neurons(read_lines(first)) != neurons(read_lines(other))


def test_a_larger_sample_adds_to_the_lines_done_and_a_rerun_computes_nothing(bench, tmp_path):
    out = tmp_path / "dist.jsonl"
    # seed 5: random.sample draws 3 and 6 of these 48 neurons by different methods, and its 6
    # do not hold its 3
    bench("--sample", "3", "--seed", "5", "--out", str(out))
    before = out.read_bytes()
    small = neurons(read_lines(out))
    _, explained = bench("--sample", "6", "--seed", "5", "--out", str(out))
    after = out.read_bytes()
    assert after.startswith(before)
    lines = read_lines(out)
    assert len(lines) == 6 and len(neurons(lines)) == 6 and small < neurons(lines)
    added = [line for line in lines[3:] if "score" in line]
    assert [f"layer {a['layer']} neuron {a['neuron']}" for a in added] == explained
    summary, explained = bench("--sample", "6", "--seed", "5", "--out", str(out))
    assert explained == [] and out.read_bytes() == after
    assert summary["neurons"] == 6


def expected_describe(values: list[float | None]) -> dict:
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    found = {"n": len(values), "undefined": len(values) - defined.size}
    if defined.size < 2:
        return {**found, "values": sorted(defined.tolist())}
    p10, p25, p75, p90 = np.percentile(defined, [10, 25, 75, 90])  # linear: "inclusive"
    return {
        **found,
        "mean": defined.mean(),
        "median": np.median(defined),
        "p10": p10,
        "p25": p25,
        "p75": p75,
        "p90": p90,
        "min": defined.min(),
        "max": defined.max(),
        "above_0": float(np.mean(defined > 0)),
    }


def test_the_summary_is_the_lines_distribution(bench, tmp_path):
    out = tmp_path / "dist.jsonl"
    bench("--sample", "8", "--seed", "0", "--out", str(out))
    lines = read_lines(out)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    explained = [line for line in lines if "score" in line]
    never_active = sum(line["neuron"] in NEVER_ACTIVE for line in lines)
    assert 0 < never_active < 8, "the sample should hold neurons of both kinds"
    assert summary["neurons"] == 8 and summary["never_active"] == never_active
    for key, column in zip(SCORES, ("score", "baseline_score"), strict=True):
        want = expected_describe([line[column] for line in explained])
        assert summary[key].keys() == want.keys()
        assert summary[key] == pytest.approx(want)
    pairs = [
        (line["score"], line["baseline_score"])
        for line in explained
        if line["score"] is not None and line["baseline_score"] is not None
    ]
    assert pairs, "no neuron with both scores defined: the comparison goes untested"
    difference = np.array([a - b for a, b in pairs])
    assert summary["explanation_beats_baseline"] == pytest.approx(np.mean(difference > 0))
    assert summary["mean_difference"] == pytest.approx(difference.mean())
    seconds = np.mean([line["seconds"] for line in explained])
    assert summary["seconds_per_neuron"] == pytest.approx(seconds)


def test_a_line_cut_as_it_was_written_is_dropped_and_the_run_goes_on(bench, tmp_path):
    out = tmp_path / "dist.jsonl"
    bench("--sample", "2", "--seed", "3", "--out", str(out))
    whole = out.read_bytes()
    out.write_bytes(whole + b'{"layer": 1, "neuron": 7, "explan')  # a stop mid-write
    summary, _ = bench("--sample", "3", "--seed", "3", "--out", str(out))
    assert out.read_bytes().startswith(whole)
    lines = read_lines(out)  # every line whole (read_lines parses each)
    assert len(lines) == 3 and len(neurons(lines)) == 3
    assert summary["neurons"] == 3
