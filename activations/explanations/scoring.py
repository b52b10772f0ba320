"""How well a simulation predicts a neuron, as neuron-explainer scores it (scoring.py): the
correlation of the simulator's expected values with the true activations (the preferred
score), R² and the share of absolute deviation explained, each over every token of every
sequence at once (one correlation over the concatenation, not a mean of per-sequence ones)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from activations.explanations.results import (
    ScoredSequenceSimulation,
    ScoredSimulation,
    SequenceSimulation,
    finite_or_none,
)


def _arrays(real: Sequence[float], predicted: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    real_a = np.asarray(real, dtype=np.float64)
    predicted_a = np.asarray(predicted, dtype=np.float64)
    if real_a.shape != predicted_a.shape:
        raise ValueError(f"{real_a.size} true values but {predicted_a.size} predicted ones")
    return real_a, predicted_a


def correlation_score(real: Sequence[float], predicted: Sequence[float]) -> float | None:
    """Pearson's r; None where it is undefined (fewer than two values, or either constant)."""
    real_a, predicted_a = _arrays(real, predicted)
    if real_a.size < 2 or real_a.std() == 0 or predicted_a.std() == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return finite_or_none(np.corrcoef(real_a, predicted_a)[0, 1])


def rsquared_score(real: Sequence[float], predicted: Sequence[float]) -> float | None:
    """1 - mean((real - predicted)²) / mean(real²), on the values as given (the simulator's
    0-10 scale against the neuron's units, as neuron-explainer computes it)."""
    real_a, predicted_a = _arrays(real, predicted)
    denominator = float(np.mean(np.square(real_a))) if real_a.size else 0.0
    if denominator == 0:
        return None
    return finite_or_none(1 - float(np.mean(np.square(real_a - predicted_a))) / denominator)


def absolute_dev_explained_score(real: Sequence[float], predicted: Sequence[float]) -> float | None:
    """1 - mean(|real - predicted|) / mean(|real|)."""
    real_a, predicted_a = _arrays(real, predicted)
    denominator = float(np.mean(np.abs(real_a))) if real_a.size else 0.0
    if denominator == 0:
        return None
    return finite_or_none(1 - float(np.mean(np.abs(real_a - predicted_a))) / denominator)


def score_sequence(
    simulation: SequenceSimulation, true_activations: Sequence[float]
) -> ScoredSequenceSimulation:
    real, predicted = list(map(float, true_activations)), simulation.expected_activations
    return ScoredSequenceSimulation(
        simulation=simulation,
        true_activations=real,
        ev_correlation_score=correlation_score(real, predicted),
        rsquared_score=rsquared_score(real, predicted),
        absolute_dev_explained_score=absolute_dev_explained_score(real, predicted),
    )


def aggregate(scored: list[ScoredSequenceSimulation]) -> ScoredSimulation:
    """The three scores over all sequences' tokens together."""
    real = [v for s in scored for v in s.true_activations]
    predicted = [v for s in scored for v in s.simulation.expected_activations]
    return ScoredSimulation(
        scored_sequence_simulations=scored,
        ev_correlation_score=correlation_score(real, predicted) if real else None,
        rsquared_score=rsquared_score(real, predicted),
        absolute_dev_explained_score=absolute_dev_explained_score(real, predicted),
    )


def score_simulations(
    simulations: Sequence[SequenceSimulation], true_activations: Sequence[Sequence[float]]
) -> ScoredSimulation:
    """Each sequence scored, then all of them at once."""
    if len(simulations) != len(true_activations):
        raise ValueError(f"{len(simulations)} simulations of {len(true_activations)} sequences")
    return aggregate(
        [score_sequence(s, t) for s, t in zip(simulations, true_activations, strict=True)]
    )
