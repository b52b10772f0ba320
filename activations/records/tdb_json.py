"""neuron-explainer's per-neuron JSON records (`tdb_json`), parsed and validated with pydantic.

The published files are written by neuron-explainer's `fast_dataclasses.dumps`, which tags each
dataclass with a "dataclass_name" key, and read back leniently by its `loads`: older files lack
the tags or use old field names, newer ones may carry fields we do not know. We accept all of that
but refuse what would break a reader later (wrong types, token and activation counts that do not
line up) with a `MalformedRecordError` that says where and what.
"""

from __future__ import annotations

from math import isnan, isqrt
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from activations.io.errors import MalformedRecordError

_TOKEN_PAIRS = "token_pairs"  # validation-context key (registry.vocabulary.TOKEN_PAIR_DSTS)


def dataclass_tag(expected: str):
    """A before-validator: a "dataclass_name" tag, when present, must name this dataclass."""

    def check(value: Any) -> str:
        if value is None:
            return expected
        if value != expected:
            raise ValueError(f"expected dataclass_name {expected!r}, got {repr(value)[:60]}")
        return value

    return field_validator("dataclass_name", mode="before")(check)


class _TdbModel(BaseModel):
    """Frozen (records are cached and shared); unknown keys are ignored, as `loads` does."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def token_pair_counts_match(n_tokens: int, n_activations: int) -> bool:
    """Whether n_activations fits a causal token-pair flattening of n_tokens tokens: token i
    attends to min(i + 1, k) tokens for some window k ≥ 1 (k = n_tokens gives n(n+1)/2)."""
    full = n_tokens * (n_tokens + 1) // 2
    missing = full - n_activations
    if missing < 0:
        return False
    m = (isqrt(8 * missing + 1) - 1) // 2  # tokens beyond the window, if missing is triangular
    return m * (m + 1) // 2 == missing and (m < n_tokens or n_tokens == 0)


class ActivationRecord(_TdbModel):
    """One text sequence and the neuron's activation on each token."""

    dataclass_name: str = "ActivationRecord"
    tokens: list[str]
    activations: list[float]

    _tag = dataclass_tag("ActivationRecord")

    @model_validator(mode="after")
    def _counts_line_up(self, info: ValidationInfo) -> ActivationRecord:
        n_tokens, n_acts = len(self.tokens), len(self.activations)
        if info.context and info.context.get(_TOKEN_PAIRS):
            if not token_pair_counts_match(n_tokens, n_acts):
                raise ValueError(
                    f"{n_acts} activations cannot be one per token pair of {n_tokens} tokens"
                )
        elif n_tokens != n_acts:
            raise ValueError(f"tokens has length {n_tokens} but activations has length {n_acts}")
        return self


class NeuronId(_TdbModel):
    dataclass_name: str = "NeuronId"
    # neuron-explainer renamed "layer" and "idx"; its loader maps the old names, so do we.
    layer_index: int = Field(validation_alias=AliasChoices("layer_index", "layer"))
    neuron_index: int = Field(validation_alias=AliasChoices("neuron_index", "idx"))

    _tag = dataclass_tag("NeuronId")


class NeuronRecord(_TdbModel):
    """Summary statistics and notable activation records of one neuron."""

    dataclass_name: str = "NeuronRecord"
    neuron_id: NeuronId
    random_sample: list[ActivationRecord] = Field(default_factory=list)
    random_sample_by_quantile: list[list[ActivationRecord]] | None = None
    quantile_boundaries: list[float] | None = None
    # Moments of the activations; neuron-explainer writes NaN (or null) for "not tracked": None.
    mean: float | None = None
    variance: float | None = None
    skewness: float | None = None
    kurtosis: float | None = None
    most_positive_activation_records: list[ActivationRecord] = Field(default_factory=list)

    _tag = dataclass_tag("NeuronRecord")

    @field_validator("mean", "variance", "skewness", "kurtosis")
    @classmethod
    def _nan_is_untracked(cls, value: float | None) -> float | None:
        return None if value is not None and isnan(value) else value

    @property
    def max_activation(self) -> float:
        """Largest activation in the top records; 0.0 when they hold none (neuron-explainer
        fails there instead, which would turn an empty record into a server error)."""
        return max(
            (a for r in self.most_positive_activation_records for a in r.activations), default=0.0
        )


def _location(loc: tuple[int | str, ...]) -> str:
    """('random_sample', 3, 'tokens') → 'random_sample[3].tokens'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "record"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        if item["type"] == "json_invalid":
            return [f"not valid JSON ({item['ctx']['error']})"]
        message = "missing" if item["type"] == "missing" else item["msg"]
        problems.append(f"{_location(item['loc'])}: {message.removeprefix('Value error, ')}")
    return problems


def parse_neuron_record(
    data: bytes | str, *, token_pairs: bool = False, source: str | None = None
) -> NeuronRecord:
    """Parse one published record; `token_pairs` for datasets by token pair (TOKEN_PAIR_DSTS),
    `source` only names the file in error messages."""
    try:
        return NeuronRecord.model_validate_json(data, context={_TOKEN_PAIRS: token_pairs})
    except ValidationError as error:
        raise MalformedRecordError(_problems(error), source) from None
