"""The data an explanation run writes, in neuron-explainer's own JSON (its `fast_dataclasses`:
snake_case fields, each object tagged with its "dataclass_name", NaN written as null), so that
its readers open our explanation files and ours open its published ones.

An object read without a tag (older files) is accepted, a wrong tag is refused; unknown keys are
ignored, as its lenient loader does. We write no field it does not know: its strict loader
(`loads(..., backwards_compatible=False)`, which TDB's server uses) fails on one.
"""

from __future__ import annotations

import json
import math
from enum import Enum

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activations.records.tdb_json import NeuronId, dataclass_tag


def finite_or_none(value: float | None) -> float | None:
    """A score or value as the files hold it: NaN and infinities are null (orjson's rule)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Fast(BaseModel):
    model_config = ConfigDict(extra="ignore")


_SCORES = ("ev_correlation_score", "rsquared_score", "absolute_dev_explained_score")


def _scores_finite():
    """Scores read as NaN (files written by json.dumps) are undefined: None."""
    return field_validator(*_SCORES, mode="after")(lambda value: finite_or_none(value))


class ActivationScale(str, Enum):
    NEURON_ACTIVATIONS = "neuron_activations"
    SIMULATED_NORMALIZED_ACTIVATIONS = "simulated_normalized_activations"
    """The simulator's 0-10 scale: not the neuron's units."""


class SequenceSimulation(_Fast):
    """The simulator's prediction on one sequence: per token the expected value and the
    distribution it came from (values 0-10 and their renormalised probabilities)."""

    dataclass_name: str = "SequenceSimulation"
    tokens: list[str]
    expected_activations: list[float]
    activation_scale: ActivationScale = ActivationScale.SIMULATED_NORMALIZED_ACTIVATIONS
    distribution_values: list[list[float]] = Field(default_factory=list)
    distribution_probabilities: list[list[float]] = Field(default_factory=list)
    uncalibrated_simulation: SequenceSimulation | None = None

    _tag = dataclass_tag("SequenceSimulation")


class ScoredSequenceSimulation(_Fast):
    dataclass_name: str = "ScoredSequenceSimulation"
    simulation: SequenceSimulation
    true_activations: list[float]
    ev_correlation_score: float | None
    rsquared_score: float | None = None
    absolute_dev_explained_score: float | None = None

    _tag = dataclass_tag("ScoredSequenceSimulation")
    _finite = _scores_finite()


class ScoredSimulation(_Fast):
    """Scores over every sequence's tokens at once (not a mean of per-sequence scores)."""

    dataclass_name: str = "ScoredSimulation"
    scored_sequence_simulations: list[ScoredSequenceSimulation]
    ev_correlation_score: float | None = None
    rsquared_score: float | None = None
    absolute_dev_explained_score: float | None = None

    _tag = dataclass_tag("ScoredSimulation")
    _finite = _scores_finite()

    def get_preferred_score(self) -> float | None:
        """The correlation; None where it is undefined (a constant simulation or record)."""
        return self.ev_correlation_score


class ScoredExplanation(_Fast):
    dataclass_name: str = "ScoredExplanation"
    explanation: str
    scored_simulation: ScoredSimulation

    _tag = dataclass_tag("ScoredExplanation")

    def get_preferred_score(self) -> float | None:
        return self.scored_simulation.get_preferred_score()


class NeuronSimulationResults(_Fast):
    """One explanation file: a neuron's scored explanations, in the order they were added."""

    dataclass_name: str = "NeuronSimulationResults"
    neuron_id: NeuronId
    scored_explanations: list[ScoredExplanation]

    _tag = dataclass_tag("NeuronSimulationResults")

    def best(self) -> ScoredExplanation | None:
        """The explanation of highest score (scored ones before unscored ones)."""
        ranked = sorted(
            self.scored_explanations,
            key=lambda s: -math.inf if s.get_preferred_score() is None else s.get_preferred_score(),
        )
        return ranked[-1] if ranked else None

    def find(self, explanation: str) -> ScoredExplanation | None:
        return next((s for s in self.scored_explanations if s.explanation == explanation), None)

    def merged(self, new: list[ScoredExplanation]) -> NeuronSimulationResults:
        """These results with `new` added; an explanation already here keeps its first score
        (as TDB's server: an explanation scored is not scored again)."""
        known = {s.explanation for s in self.scored_explanations}
        added = [s for s in new if s.explanation not in known]
        return self.model_copy(update={"scored_explanations": self.scored_explanations + added})


def dumps(results: NeuronSimulationResults) -> bytes:
    """One line of neuron-explainer's JSON (tags first in each object, as its dataclasses)."""
    return orjson.dumps(results.model_dump(mode="json"))


def loads(data: bytes | str) -> NeuronSimulationResults:
    """An explanation file's first line (neuron-explainer writes one per file)."""
    text = data.decode() if isinstance(data, bytes) else data
    line = next((line for line in text.splitlines() if line.strip()), "")
    if not line:
        raise ValueError("empty explanation file")
    # the standard library's parser, as neuron-explainer's: it reads NaN where orjson refuses it
    return NeuronSimulationResults.model_validate(json.loads(line))
