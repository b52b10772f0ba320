"""What a neuron record is, as the Python API gives it and the server answers it (camelCase on
the wire): GLU quadrant records, and neuron-explainer's shape for its own datasets."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from activations.records.file_metadata import CollationMetadata
from activations.records.tdb_json import ActivationRecord, NeuronRecord
from activations.weights.answers import NeuronWeightView
from registry.metadata import CamelModel, NeuronDatasetMetadata


class GluExample(CamelModel):
    value: float
    document_index: int
    position: int | None = None
    tokens: list[str] | None = None
    """The document's tokens around the max (?context=N)."""
    window_start: int | None = None
    """Position in the document of tokens[0]."""
    activations: dict[str, list[float]] | None = None
    """This neuron's per-token values on `tokens`, by hook (?activations=true)."""
    note: str | None = None
    """Why this example has no text (its document could not be had)."""


class GluQuadrant(CamelModel):
    name: str
    freq: float | None
    count: int | None = None
    means: dict[str, float | None]
    examples: dict[str, list[GluExample]]
    histogram: list[int] | None = None
    """The quadrant's tokens per bin of the record's `histogram` (files without one: None)."""


class ValueHistogram(CamelModel):
    """A neuron's values of one hook over every token, counted in fixed bins (the vocabulary's;
    docs/histogram.md): bin i holds values in [edge i-1, edge i), where the edges are
    [-inf, *inner_edges, +inf] and the last bin also holds +inf."""

    hook: str
    inner_edges: list[float]
    zero_bin: int
    """The bin of exact zeros."""
    counts: list[int]
    """Every token's (the quadrants' histograms, plus the tokens in none)."""

    def edges(self) -> list[float]:
        """Every edge, infinities included: numpy.histogram(values, bins=edges()) counts alike."""
        return [float("-inf"), *self.inner_edges, float("inf")]

    @classmethod
    def of_counts(cls, counts: list[int], bins: dict[str, Any]) -> ValueHistogram:
        """Counts in the bins a file names ({hook, zeroBin, innerEdges}, as written)."""
        return cls(
            hook=bins["hook"], inner_edges=bins["innerEdges"], zero_bin=bins["zeroBin"],
            counts=counts,
        )  # fmt: skip


class GluNeuronRecord(CamelModel):
    dataset: NeuronDatasetMetadata
    layer: int
    neuron: int
    hook: str
    quadrants: list[GluQuadrant]
    histogram: ValueHistogram | None = None
    """The distribution of the neuron's values (files of ours since it was added; else None)."""
    file_metadata: CollationMetadata = Field(default_factory=CollationMetadata)
    """What the file says of its collation, under the file's own keys (those it has)."""
    context_note: str | None = None
    """Why examples carry no text, when they don't."""
    weights: NeuronWeightView | None = None
    """What the neuron reads and writes, from the model's weights (?weights=true)."""
    weights_note: str | None = None
    """Why `weights` is not given (being computed, or the model cannot be read here)."""


class ActivationRecordResponse(CamelModel):
    model_config = ConfigDict(frozen=True)

    tokens: list[str]
    activations: list[float]


class NeuronRecordResponse(CamelModel):
    """What neuron-explainer's server answers for one neuron (dump with by_alias=True)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    """The dataset's path or registered name."""
    max_activation: float
    top_activations: list[ActivationRecordResponse]
    random_sample: list[ActivationRecordResponse]


def _response_records(records: list[ActivationRecord]) -> list[ActivationRecordResponse]:
    # Already validated: construct without validating the token and activation lists again.
    return [
        ActivationRecordResponse.model_construct(tokens=r.tokens, activations=r.activations)
        for r in records
    ]


def neuron_record_response(record: NeuronRecord, dataset: str) -> NeuronRecordResponse:
    return NeuronRecordResponse(
        dataset=dataset,
        max_activation=record.max_activation,
        top_activations=_response_records(record.most_positive_activation_records),
        random_sample=_response_records(record.random_sample),
    )
