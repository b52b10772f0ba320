"""HTTP bodies, camelCase on the wire like neuron-explainer's API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from activations.derived_scalars import DerivedScalarType
from registry.metadata import NeuronDatasetMetadata


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class GluExample(ApiModel):
    value: float
    document_index: int
    position: int | None = None
    tokens: list[str] | None = None
    """The document's tokens around the max (?context=N)."""
    window_start: int | None = None
    """Position in the document of tokens[0]."""
    activations: dict[str, list[float]] | None = None
    """This neuron's per-token values on `tokens`, by hook (?activations=true)."""


class GluQuadrant(ApiModel):
    name: str
    freq: float | None
    count: int | None = None
    means: dict[str, float | None]
    examples: dict[str, list[GluExample]]


class GluNeuronRecord(ApiModel):
    dataset: NeuronDatasetMetadata
    layer: int
    neuron: int
    hook: str
    quadrants: list[GluQuadrant]
    file_metadata: dict[str, Any] = Field(default_factory=dict)
    context_note: str | None = None
    """Why examples carry no text, when they don't."""


class NeuronRecordRequest(ApiModel):
    """neuron-explainer's POST /neuron_record body."""

    dst: DerivedScalarType
    layer_index: int = Field(ge=0, le=1_000_000)
    activation_index: int = Field(ge=0, le=100_000_000)
    short_name: str | None = Field(default=None, max_length=200)
    dataset_name: str | None = Field(default=None, max_length=200)


class ActivationsRequest(ApiModel):
    model: str = Field(max_length=200)
    text: str | None = None
    texts: list[str] | None = None
    layer: int = Field(ge=0, le=1_000_000)
    neurons: list[int] | None = Field(default=None, max_length=4096)
    top_k: int | None = Field(default=None, ge=1, le=4096)
    dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> ActivationsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (a string) or `texts` (a list)")
        if self.texts is not None and not self.texts:
            raise ValueError("`texts` must not be empty")
        if self.neurons is not None and self.top_k is not None:
            raise ValueError("give `neurons` or `topK`, not both")
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class NeuronTraceBody(ApiModel):
    neuron: int
    values: list[float]
    quadrants: list[str | None] | None = None


class TextTraceBody(ApiModel):
    tokens: list[str]
    token_ids: list[int]
    neurons: list[NeuronTraceBody]


class ActivationsResponse(ApiModel):
    model: str
    layer: int
    dst: DerivedScalarType
    hook: str
    results: list[TextTraceBody]
