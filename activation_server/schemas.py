"""HTTP bodies of requests and of answers that are not records (activations.records.answers
has those), camelCase on the wire like neuron-explainer's API."""

from __future__ import annotations

from pydantic import AliasChoices, Field, StrictInt, model_validator

from activations.api import DatasetShape
from registry.metadata import CamelModel, NeuronDatasetMetadata, VocabularyDescription
from registry.vocabulary import DerivedScalarType


def check_text(text: str, i: int = 0) -> None:
    """A text any tokenizer reads: not empty, valid Unicode."""
    if not text:
        raise ValueError(f"text {i} is empty: give at least one character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"text {i} is not valid Unicode at character {error.start} (a lone "
            "surrogate, \\ud800-\\udfff, which no tokenizer reads)"
        ) from None


class ActivationsRequest(CamelModel):
    model: str = Field(max_length=200)
    text: str | None = None
    texts: list[str] | None = None
    layer: StrictInt = Field(ge=0, le=1_000_000)
    neurons: list[StrictInt] | None = Field(default=None, max_length=4096)
    top_neurons: StrictInt | None = Field(
        default=None,
        ge=1,
        le=4096,
        validation_alias=AliasChoices("topNeurons", "top_neurons", "topK"),
        description="the neurons of largest max |value| over the texts (`topK` is an older name)",
    )
    dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> ActivationsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (a string) or `texts` (a list)")
        if self.texts is not None and not self.texts:
            raise ValueError("`texts` must not be empty")
        if self.neurons is not None and self.top_neurons is not None:
            raise ValueError("give `neurons` or `topNeurons`, not both")
        for i, text in enumerate(self.all_texts):
            check_text(text, i)
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class PromptSearchRequest(CamelModel):
    model: str = Field(max_length=200)
    text: str
    dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT
    token_index: StrictInt | None = Field(
        default=None,
        ge=-1_000_000,
        le=1_000_000,
        description="the token to search at (negative: from the end); none: the whole text",
    )
    top_neurons: StrictInt = Field(default=20, ge=1, le=1000)
    skip_first: bool = Field(
        default=False,
        description="leave the first token out of a whole-text search (an attention sink: "
        "many models park values thousands of times larger there)",
    )
    dataset: str | None = Field(
        default=None, max_length=200, description="the dataset whose pages hits link to"
    )

    @model_validator(mode="after")
    def _a_text(self) -> PromptSearchRequest:
        check_text(self.text)
        return self


class NeuronTraceBody(CamelModel):
    neuron: int
    values: list[float]
    quadrants: list[str | None] | None = None


class TextTraceBody(CamelModel):
    tokens: list[str]
    token_ids: list[int]
    neurons: list[NeuronTraceBody]


class ActivationsResponse(CamelModel):
    model: str
    layer: int
    dst: DerivedScalarType
    hook: str
    results: list[TextTraceBody]


class DatasetEntry(NeuronDatasetMetadata):
    """A registered dataset, and what it holds where that is known without reading it."""

    shape: DatasetShape | None = None
    shape_note: str | None = None
    """Why the shape is not given: not opened yet, missing, or a format without an index."""


class HealthResponse(CamelModel):
    status: str
    models_loaded: list[str]
    live_batches: int
    live_requests: int


SchemaResponse = VocabularyDescription
"""The vocabulary (registry.metadata.describe_vocabulary)."""
