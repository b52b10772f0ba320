"""Scores against an independent computation (numpy over all tokens of all sequences), and the
files in neuron-explainer's fast_dataclasses layout."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from activations.explanations.results import (
    NeuronSimulationResults,
    ScoredExplanation,
    SequenceSimulation,
    dumps,
    loads,
)
from activations.explanations.scoring import (
    absolute_dev_explained_score,
    correlation_score,
    rsquared_score,
    score_simulations,
)
from activations.records.tdb_json import NeuronId

TRUE = [[0.0, 0.5, 3.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.5, 0.2, 0.1, 0.0]]
EXPECTED = [[0.0, 1.0, 9.0, 0.5], [2.0, 0.0, 1.0], [0.0, 6.0, 0.0, 0.0, 3.0]]

# neuron-explainer's dataclass fields (explanations.py), in order, after "dataclass_name"
THEIR_FIELDS = {
    "NeuronSimulationResults": ["neuron_id", "scored_explanations"],
    "NeuronId": ["layer_index", "neuron_index"],
    "ScoredExplanation": ["explanation", "scored_simulation"],
    "ScoredSimulation": [
        "scored_sequence_simulations",
        "ev_correlation_score",
        "rsquared_score",
        "absolute_dev_explained_score",
    ],
    "ScoredSequenceSimulation": [
        "simulation",
        "true_activations",
        "ev_correlation_score",
        "rsquared_score",
        "absolute_dev_explained_score",
    ],
    "SequenceSimulation": [
        "tokens",
        "expected_activations",
        "activation_scale",
        "distribution_values",
        "distribution_probabilities",
        "uncalibrated_simulation",
    ],
}


def simulations() -> list[SequenceSimulation]:
    return [
        SequenceSimulation(tokens=[f"t{i}" for i in range(len(e))], expected_activations=e)
        for e in EXPECTED
    ]


def test_the_preferred_score_is_one_correlation_over_all_tokens():
    scored = score_simulations(simulations(), TRUE)
    real = np.concatenate([np.array(t) for t in TRUE])
    predicted = np.concatenate([np.array(e) for e in EXPECTED])
    assert scored.get_preferred_score() == pytest.approx(np.corrcoef(real, predicted)[0, 1])
    per_sequence = [np.corrcoef(t, e)[0, 1] for t, e in zip(TRUE, EXPECTED, strict=True)]
    assert scored.ev_correlation_score != pytest.approx(np.mean(per_sequence))
    for one, t, e in zip(scored.scored_sequence_simulations, TRUE, EXPECTED, strict=True):
        assert one.ev_correlation_score == pytest.approx(np.corrcoef(t, e)[0, 1])
        assert one.true_activations == t


def test_rsquared_and_absolute_deviation_as_written_out():
    scored = score_simulations(simulations(), TRUE)
    real = [v for t in TRUE for v in t]
    predicted = [v for e in EXPECTED for v in e]
    squared = sum((r - p) ** 2 for r, p in zip(real, predicted, strict=True)) / len(real)
    assert scored.rsquared_score == pytest.approx(
        1 - squared / (sum(r * r for r in real) / len(real))
    )
    absolute = sum(abs(r - p) for r, p in zip(real, predicted, strict=True)) / len(real)
    mean_abs = sum(abs(r) for r in real) / len(real)
    assert scored.absolute_dev_explained_score == pytest.approx(1 - absolute / mean_abs)


def test_a_perfect_and_an_undefined_simulation():
    assert correlation_score([0, 1, 2], [0, 5, 10]) == pytest.approx(1.0)
    assert correlation_score([0, 1, 2], [3, 3, 3]) is None  # numpy says NaN: the file says null
    assert correlation_score([1.0], [1.0]) is None
    assert rsquared_score([0, 0], [1, 2]) is None
    assert absolute_dev_explained_score([0, 0], [1, 2]) is None
    assert rsquared_score([1, 2], [1, 2]) == 1.0
    with pytest.raises(ValueError, match="3 true values but 2"):
        correlation_score([1, 2, 3], [1, 2])


def results() -> NeuronSimulationResults:
    sims = simulations()
    sims[0] = sims[0].model_copy(
        update={"distribution_values": [[0, 1]] * 4, "distribution_probabilities": [[0.5, 0.5]] * 4}
    )
    scored = ScoredExplanation(explanation="kings", scored_simulation=score_simulations(sims, TRUE))
    return NeuronSimulationResults(
        neuron_id=NeuronId(layer_index=3, neuron_index=7), scored_explanations=[scored]
    )


def check_layout(value):
    """Every object is tagged first and holds exactly the fields of its dataclass."""
    if isinstance(value, list):
        for item in value:
            check_layout(item)
    elif isinstance(value, dict):
        keys = list(value)
        assert keys[0] == "dataclass_name", keys
        assert keys[1:] == THEIR_FIELDS[value["dataclass_name"]], value["dataclass_name"]
        for item in value.values():
            check_layout(item)


def test_files_are_neuron_explainers_json():
    data = orjson.loads(dumps(results()))
    check_layout(data)
    assert data["neuron_id"] == {"dataclass_name": "NeuronId", "layer_index": 3, "neuron_index": 7}
    sequence = data["scored_explanations"][0]["scored_simulation"]["scored_sequence_simulations"][0]
    assert sequence["simulation"]["activation_scale"] == "simulated_normalized_activations"
    assert loads(dumps(results())) == results()


def test_their_files_are_read_tags_or_not_and_a_wrong_tag_is_refused():
    data = orjson.loads(dumps(results()))
    untagged = orjson.loads(orjson.dumps(data).replace(b'"dataclass_name":', b'"_was_tag":'))
    assert loads(orjson.dumps(untagged)) == results()
    nan = orjson.dumps(data).replace(b'"rsquared_score":', b'"rsquared_score":NaN,"x":', 1)
    first = loads(nan).scored_explanations[0].scored_simulation.scored_sequence_simulations[0]
    assert first.rsquared_score is None
    data["dataclass_name"] = "NeuronRecord"
    with pytest.raises(ValueError, match="expected dataclass_name"):
        loads(orjson.dumps(data))


def test_best_and_merge_keep_the_first_score():
    first = results()
    worse = ScoredExplanation(
        explanation="queens", scored_simulation=score_simulations(simulations()[:1], TRUE[:1])
    )
    again = first.scored_explanations[0].model_copy(
        update={"scored_simulation": worse.scored_simulation}
    )
    merged = first.merged([worse, again])
    assert [s.explanation for s in merged.scored_explanations] == ["kings", "queens"]
    assert merged.find("kings") == first.scored_explanations[0]
    best = max(merged.scored_explanations, key=lambda s: s.get_preferred_score())
    assert merged.best() == best
