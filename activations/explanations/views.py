"""A neuron's explanations as the server answers them and the Python API gives them: every
explanation dataset of the neuron that has some, each explanation with its three scores and
its simulation (per sequence: tokens, real values, the simulator's expected values), best
first."""

from __future__ import annotations

from activations.explanations.results import ScoredExplanation
from registry.metadata import CamelModel, NeuronDatasetMetadata


class SimulatedSequence(CamelModel):
    tokens: list[str]
    true_activations: list[float]
    expected_activations: list[float]
    """The simulator's expected values, 0-10."""


def sequences_of(scored: ScoredExplanation) -> list[SimulatedSequence]:
    return [
        SimulatedSequence(
            tokens=s.simulation.tokens,
            true_activations=s.true_activations,
            expected_activations=s.simulation.expected_activations,
        )
        for s in scored.scored_simulation.scored_sequence_simulations
    ]


class ScoredExplanationView(CamelModel):
    explanation: str
    score: float | None
    """The correlation of the simulation with the real values (neuron-explainer's preferred
    score); None where undefined."""
    rsquared_score: float | None
    absolute_dev_explained_score: float | None
    sequences: list[SimulatedSequence]


class ExplanationDatasetView(CamelModel):
    name: str
    path: str
    quadrant: str | None
    """The GLU quadrant explained; None: the neuron's positive activations."""
    explanations: list[ScoredExplanationView]


def _rank(scored: ScoredExplanation) -> float:
    value = scored.get_preferred_score()
    return float("-inf") if value is None else value


async def neuron_views(
    explanations, metadata: NeuronDatasetMetadata, layer: int, neuron: int
) -> list[ExplanationDatasetView]:
    """`explanations`: a service.Explanations."""
    datasets = explanations.datasets(metadata)
    found = await explanations.existing(datasets, layer, neuron)
    views = []
    for dataset in datasets:
        mine = sorted((s for d, s in found if d == dataset), key=_rank, reverse=True)
        if not mine:
            continue
        views.append(
            ExplanationDatasetView(
                name=dataset.name,
                path=dataset.explanation_dataset_path,
                quadrant=dataset.quadrant,
                explanations=[
                    ScoredExplanationView(
                        explanation=x.explanation,
                        score=x.get_preferred_score(),
                        rsquared_score=x.scored_simulation.rsquared_score,
                        absolute_dev_explained_score=x.scored_simulation.absolute_dev_explained_score,
                        sequences=sequences_of(x),
                    )
                    for x in mine
                ],
            )
        )
    return views
