"""Explanations and their scores, in TDB's shapes (its read_routes.py and explainer_routes.py),
so that its neuron viewer shows ours: POST /existing_explanations, POST /explain, POST /score;
and ours: GET /explanations/{short_name}/{dst}/{layer}/{neuron} (every explanation dataset of
the neuron, each explanation's scores and simulation) and GET /search/explanations?q=."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import Field

from activation_server.errors import hide_paths
from activation_server.routes.neuron_explainer import NodeIdAndDatasets, first_with_node
from activation_server.services import Services, services
from activations.api import (
    MAX_EXPLANATION_CHARS,
    ExplanationDatasetView,
    ExplanationSearchResult,
    SimulatedSequence,
    neuron_views,
    sequences_of,
)
from activations.errors import ExplanationError
from activations.session import public_name
from registry import get_all_neuron_dataset_metadata, resolve_dataset
from registry import get_neuron_dataset_metadata_by_short_name_and_dst as dataset_of
from registry.errors import UnknownDatasetError
from registry.explanations import ExplanationDatasetMetadata
from registry.metadata import CamelModel
from registry.vocabulary import DerivedScalarType

router = APIRouter(tags=["explanations"])
Name = Annotated[str, Field(max_length=2000)]


class ExistingExplanationsRequest(CamelModel):
    """TDB's request: exactly one of explanationDatasets and neuronDataset."""

    dst: DerivedScalarType
    layer_index: int = Field(ge=0, le=1_000_000)
    activation_index: int = Field(ge=0, le=100_000_000)
    explanation_datasets: list[Name] = Field(default=[], max_length=32)
    neuron_dataset: Name | None = None


class AttributedScoredExplanation(CamelModel):
    explanation: str
    score: float | None
    dataset_name: str
    quadrant: str | None = None
    """Ours: the GLU quadrant explained (None: the neuron's positive activations)."""


class ExplainRequest(NodeIdAndDatasets):
    explainer: str | None = Field(default=None, max_length=200)
    """A registered explainer (default: the embedded model, in process)."""
    again: bool = False
    """Explain anew even where explanations are stored."""


class ExplanationResult(CamelModel):
    explanations: list[str]
    dataset: str
    scored_explanations: list[AttributedScoredExplanation] = []
    """Ours: each explanation's score, dataset and quadrant, best first per dataset."""


class ScoreRequest(NodeIdAndDatasets):
    explanation: str = Field(max_length=100_000)
    max_sequences: int | None = Field(default=None, ge=1, le=100)
    quadrant: str | None = Field(default=None, max_length=40)
    explainer: str | None = Field(default=None, max_length=200)


class ScoreResult(CamelModel):
    score: float
    dataset_path: str
    sequences: list[SimulatedSequence] = []
    """Ours: each scored sequence, its real values and the simulator's expected ones (0-10)."""


def _explanation_datasets(s: Services, dst: DerivedScalarType) -> list[ExplanationDatasetMetadata]:
    found = []
    for metadata in get_all_neuron_dataset_metadata():
        if metadata.derived_scalar_type == dst:
            found += [d for d in s.explanations.datasets(metadata) if d not in found]
    return found


def _named(
    s: Services, dst: DerivedScalarType, names: list[str]
) -> list[ExplanationDatasetMetadata]:
    """Explanation datasets by name or path: only those registered or ours (a client never
    makes the server read a path of its choosing)."""
    known = _explanation_datasets(s, dst)
    chosen = []
    for name in names:
        match = [
            d
            for d in known
            if name in (d.name, d.explanation_dataset_path)
            or name.rstrip("/") == d.explanation_dataset_path.rstrip("/")
        ]
        if not match:
            listed = ", ".join(sorted({f'"{d.name}"' for d in known}))
            raise UnknownDatasetError(f'no explanation dataset "{name}"; known: {listed}')
        chosen.append(match[0])
    return chosen


@router.post("/existing_explanations", response_model=list[AttributedScoredExplanation])
async def existing_explanations(
    body: ExistingExplanationsRequest, s: Annotated[Services, Depends(services)]
) -> list[AttributedScoredExplanation]:
    """The stored explanations of a node: of the named explanation datasets, or of every
    explanation dataset of the named neuron dataset (published, ours, a GLU neuron's
    quadrants')."""
    if bool(body.explanation_datasets) == (body.neuron_dataset is not None):
        raise HTTPException(
            status_code=400,
            detail="Exactly one of explanation_datasets and neuron_dataset must be specified.",
        )
    if body.explanation_datasets:
        datasets = _named(s, body.dst, body.explanation_datasets)
    else:
        datasets = s.explanations.datasets(resolve_dataset(body.neuron_dataset, body.dst))
    found = await s.explanations.existing(datasets, body.layer_index, body.activation_index)
    return [
        AttributedScoredExplanation(
            explanation=scored.explanation,
            score=scored.get_preferred_score(),
            dataset_name=dataset.name,
            quadrant=dataset.quadrant,
        )
        for dataset, scored in found
    ]


@router.post("/explain", response_model=ExplanationResult)
async def explain(
    body: ExplainRequest, s: Annotated[Services, Depends(services)]
) -> ExplanationResult:
    """Explain a node: neuron-explainer's explainer on its top records, candidates scored by
    simulation, all stored; a node explained before answers its stored explanations. A GLU
    neuron is explained per quadrant too. 422 for a node never active."""

    async def read(source):
        return await s.explanations.explain(
            source.metadata,
            body.layer_index,
            body.activation_index,
            explainer=body.explainer,
            again=body.again,
        )

    explained = await first_with_node(s, body, read)
    attributed = [
        AttributedScoredExplanation(
            explanation=scored.explanation,
            score=scored.get_preferred_score(),
            dataset_name=dataset.name,
            quadrant=dataset.quadrant,
        )
        for dataset, found in explained.by_target
        for scored in found
    ]
    overall = [a.explanation for a in attributed if a.quadrant is None]
    return ExplanationResult(
        explanations=overall or [a.explanation for a in attributed],
        dataset=explained.dataset,
        scored_explanations=attributed,
    )


@router.post("/score", response_model=ScoreResult)
async def score(body: ScoreRequest, s: Annotated[Services, Depends(services)]) -> ScoreResult:
    """Score a text as an explanation of a node (or of a GLU quadrant of it): simulated on
    the node's valid records (`maxSequences` of them at most), stored; a text scored before
    answers its stored score."""
    if not body.explanation.strip() or len(body.explanation.strip()) > MAX_EXPLANATION_CHARS:
        raise ExplanationError(
            f"the explanation must be 1 to {MAX_EXPLANATION_CHARS} characters of text"
        )

    async def read(source):
        scored = await s.explanations.score(
            source.metadata,
            body.layer_index,
            body.activation_index,
            body.explanation,
            quadrant=body.quadrant,
            max_sequences=body.max_sequences,
            explainer=body.explainer,
        )
        return source, scored

    source, scored = await first_with_node(s, body, read)
    value = scored.get_preferred_score()
    if value is None:
        raise ExplanationError(
            "the score is undefined: the simulation or the neuron is constant on the scored "
            "sequences"
        )
    return ScoreResult(
        score=value, dataset_path=public_name(source.metadata), sequences=sequences_of(scored)
    )


@router.get(
    "/explanations/{short_name}/{dst}/{layer}/{neuron}",
    response_model=list[ExplanationDatasetView],
)
async def neuron_explanations(
    short_name: str,
    dst: str,
    layer: Annotated[int, Field(ge=0, le=1_000_000)],
    neuron: Annotated[int, Field(ge=0, le=100_000_000)],
    s: Annotated[Services, Depends(services)],
) -> list[ExplanationDatasetView]:
    """Every explanation dataset of the neuron that has explanations of it, each explanation
    with its three scores and its simulation, best first."""
    views = await neuron_views(s.explanations, dataset_of(short_name, dst), layer, neuron)
    if s.settings.expose_paths:
        return views
    return [v.model_copy(update={"path": hide_paths(v.path)}) for v in views]


@router.get("/search/explanations", response_model=ExplanationSearchResult)
async def search_explanations(
    s: Annotated[Services, Depends(services)],
    q: Annotated[str, Query(min_length=1, max_length=500)],
    top: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> ExplanationSearchResult:
    """Explanations of every registered dataset's neurons holding the query's words, most of
    them first, then by score; each links to its neuron's page."""
    datasets = []
    for metadata in get_all_neuron_dataset_metadata():
        datasets += [d for d in s.explanations.datasets(metadata) if d not in datasets]
    return await s.pools.cpu.run(s.explanation_index.search, q, datasets, top)
