"""What a search answers, as the Python API gives it and the server returns it (camelCase on
the wire), and the one error a search raises for what it cannot do as asked."""

from __future__ import annotations

from pydantic import Field

from registry import get_all_neuron_dataset_metadata
from registry.metadata import CamelModel, DatasetFormat
from registry.vocabulary import DerivedScalarType


class SearchError(ValueError):
    """The search cannot be answered as asked (a token index out of range, a token that is not
    one token, a dataset without the positions token search needs); the message says why and
    what is valid."""


class PromptHit(CamelModel):
    layer: int
    neuron: int
    value: float
    """The neuron's value at `position` (signed; hits are ranked by its absolute value)."""
    position: int
    """The token where it is largest in absolute value (the asked token, where one was)."""
    token: str
    quadrant: str | None
    """Signs of gate and in at that token (GLU neurons; None where either is exactly 0)."""
    page: str | None = None
    """The neuron's page in the viewer, where a dataset of this model and type is registered."""


class PromptSearchResult(CamelModel):
    model: str
    dst: DerivedScalarType
    hook: str
    tokens: list[str]
    token_ids: list[int]
    token_index: int | None = Field(description="the token searched at; None: the whole text")
    neurons: list[PromptHit]
    dataset: str | None = Field(None, description="the dataset the pages belong to")


class TokenHit(CamelModel):
    layer: int
    neuron: int
    count: int
    """How many of its stored top examples (all quadrants) peak on the token."""
    max_value: float
    """The value of largest |value| among them (signed)."""
    quadrants: dict[str, int]
    """Those examples by quadrant."""
    page: str


class TokenSearchResult(CamelModel):
    dataset: str
    dst: DerivedScalarType
    hook: str
    token: str
    token_id: int
    examples: int = Field(description="stored top examples of this hook that peak on the token")
    indexed: int = Field(description="stored top examples of this hook in the index")
    neurons: list[TokenHit]


def page_of(short_name: str, dst: DerivedScalarType, layer: int, neuron: int) -> str:
    return f"/neuron/{short_name}/{dst.value}/{layer}/{neuron}"


def dataset_of_model(model: str, dst: DerivedScalarType) -> str | None:
    """The registered dataset of a model and type whose pages a search links to (a GLU
    Parquet dataset first), or None."""
    found = [
        m for m in get_all_neuron_dataset_metadata()
        if m.model == model and m.derived_scalar_type == dst
    ]  # fmt: skip
    found.sort(key=lambda m: m.format != DatasetFormat.GLU_PARQUET)
    return found[0].short_name if found else None
