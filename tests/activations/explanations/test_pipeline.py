"""Explain and score through the pipeline: neuron-explainer's splits, candidates each scored
(recomputed here from the kept simulations), best first; bad input refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from activations.explanations.backends import InProcessBackend
from activations.explanations.errors import ExplanationError, NeverActiveError
from activations.explanations.local import LocalLM
from activations.explanations.pipeline import (
    Target,
    explain,
    score,
    train_records,
    valid_records,
)
from activations.explanations.targets import neuron_targets
from activations.models.pool import ModelPool
from activations.records.tdb_json import ActivationRecord
from activations.sources.catalog import RecordSources
from registry import register_neuron_dataset_metadata
from tests.tiny_chat import make_tiny_chat_model

FIXTURES = Path(__file__).parents[2] / "fixtures" / "tdb" / "collated-activations"


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> InProcessBackend:
    folder = make_tiny_chat_model(tmp_path_factory.mktemp("chat"), seed=1)
    lm = LocalLM(
        AutoModelForCausalLM.from_pretrained(folder).eval(),
        AutoTokenizer.from_pretrained(folder),
        "tiny-chat",
    )

    async def run(work):
        return await asyncio.to_thread(work, lm)

    return InProcessBackend("tiny-chat", run)


def records(n: int, offset: int = 0) -> list[ActivationRecord]:
    return [
        ActivationRecord(tokens=[f"r{i}", "x"], activations=[i + offset, 0.0]) for i in range(n)
    ]


def test_splits_are_neuron_explainers_interleaving():
    target = Target(None, records(20), records(15, 100))
    assert [r.activations[0] for r in train_records(target)] == [0, 4, 8, 12, 16]
    assert [r.activations[0] for r in valid_records(target)] == [2, 6, 10, 14, 18] + [
        101,
        104,
        107,
        110,
        113,
    ]
    assert [r.activations[0] for r in train_records(target, per_split=2)] == [0, 4]
    small = Target(None, records(3))
    assert [r.activations[0] for r in train_records(small)] == [0, 2]
    assert [r.activations[0] for r in valid_records(small)] == [1]


def tdb_target() -> Target:
    register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "TDB fixture", str(FIXTURES))
    from registry import resolve_dataset

    sources = RecordSources(ModelPool())
    source = sources.get(resolve_dataset("tdb-fixture", "mlp_post_act"))
    (target,) = asyncio.run(neuron_targets(source, 0, 1))
    return target


def test_explain_scores_every_candidate_and_keeps_the_simulation(backend):
    target = tdb_target()
    assert len(target.top) == 4 and len(target.random) == 3
    found = asyncio.run(explain(backend, target, "layer 0 neuron 1", candidates=3, max_tokens=8))
    assert 1 <= len(found) <= 3
    scores = [s.get_preferred_score() for s in found]
    assert scores == sorted(scores, key=lambda v: -np.inf if v is None else v, reverse=True)
    valid = valid_records(target)
    for scored in found:
        sequences = scored.scored_simulation.scored_sequence_simulations
        assert [s.true_activations for s in sequences] == [r.activations for r in valid]
        assert [s.simulation.tokens for s in sequences] == [r.tokens for r in valid]
        real = np.concatenate([s.true_activations for s in sequences])
        predicted = np.concatenate([s.simulation.expected_activations for s in sequences])
        assert scored.get_preferred_score() == pytest.approx(np.corrcoef(real, predicted)[0, 1])


def test_score_a_given_text_on_at_most_max_sequences(backend):
    target = tdb_target()
    scored = asyncio.run(score(backend, target, "  royalty ", max_sequences=1))
    assert scored.explanation == "royalty"
    assert len(scored.scored_simulation.scored_sequence_simulations) == 1


@pytest.mark.parametrize("text", ["", "   ", "x" * 501])
def test_empty_or_over_long_text_is_refused(backend, text):
    with pytest.raises(ExplanationError, match="empty|at most 500"):
        asyncio.run(score(backend, tdb_target(), text))


def test_a_neuron_never_active_is_refused(backend):
    quiet = Target(None, [ActivationRecord(tokens=["a"], activations=[-1.0])])
    with pytest.raises(NeverActiveError, match="never active"):
        asyncio.run(explain(backend, quiet, "layer 1 neuron 2"))


def test_the_top_tokens_baseline_names_where_train_records_peak():
    from activations.explanations.pipeline import top_tokens_explanation

    peaks = [" king", " queen", " king", ".", " king"] * 4
    top = [ActivationRecord(tokens=["a", peak, "b"], activations=[0.0, 5.0, 1.0]) for peak in peaks]
    # train records: 0, 4, 8, 12, 16 → " king", " king", ".", " king", " queen"... in order
    expected = [peaks[i] for i in range(0, 20, 4)]
    text = top_tokens_explanation(Target(None, top))
    most = max(set(expected), key=expected.count)
    assert text.startswith(f'the tokens "{most.strip()}"')
    assert all(f'"{p.strip()}"' in text for p in set(expected))
