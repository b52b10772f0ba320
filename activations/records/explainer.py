"""Records in the shape neuron-explainer's own viewer reads (its activation server's
NeuronRecordResponse and AttentionHeadRecordResponse): token sequences of
{token, scalar, normalizedScalar}, from its own datasets and from GLU ones alike.

Normalization follows its server (read_routes.py): one scale for the top and the random
sequences together, M = the largest positive value among them, normalizedScalar =
max(value / (M - 1e-5), 0). Where no value is positive (M = 0) every normalizedScalar is 0 (its
server divides by -1e-5 there, or fails on empty records; these answer sensibly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from registry.metadata import CamelModel

EPSILON = 1e-5  # neuron-explainer's create_scale_linear


class ActivationRecordLike(Protocol):
    """One sequence and its values (tdb_json.ActivationRecord)."""

    tokens: list[str]
    activations: list[float]


class TokenAndScalar(CamelModel):
    token: str
    scalar: float
    normalized_scalar: float


class ExplainerRecord(CamelModel):
    """neuron-explainer's NeuronRecordResponse (POST /neuron_record)."""

    dataset: str
    """The dataset's registered URL or short name."""
    max_activation: float
    """The largest value of the top sequences (0.0 when there are none)."""
    top_activations: list[list[TokenAndScalar]]
    random_sample: list[list[TokenAndScalar]]
    note: str | None = None
    """What could not be shown and why (ours; neuron-explainer's viewer ignores it)."""


class TokenAndAttentionScalars(CamelModel):
    token: str
    scalars: list[float]
    normalized_scalars: list[float]
    total_scalar_in: float
    normalized_total_scalar_in: float
    max_scalar_in: float
    normalized_max_scalar_in: float
    total_scalar_out: float
    normalized_total_scalar_out: float
    max_scalar_out: float
    normalized_max_scalar_out: float


class ExplainerAttentionRecord(CamelModel):
    """neuron-explainer's AttentionHeadRecordResponse (POST /attention_head_record)."""

    dataset: str
    max_attention_activation: float
    most_positive_token_sequences: list[list[TokenAndAttentionScalars]]
    random_token_sequences: list[list[TokenAndAttentionScalars]]


def scale(values: Sequence[float]):
    """neuron-explainer's linear scale of positive values, given all values it spans."""
    top = max([0.0, *values])
    if top <= 0:
        return lambda x: 0.0
    return lambda x: max(x / (top - EPSILON), 0.0)


def token_sequences(
    groups: Sequence[Sequence[tuple[Sequence[str], Sequence[float]]]],
) -> list[list[list[TokenAndScalar]]]:
    """Each group (top, random) of (tokens, values) sequences, normalized on one scale."""
    normalize = scale([v for group in groups for _, values in group for v in values])
    return [
        [
            [
                TokenAndScalar(token=t, scalar=v, normalized_scalar=normalize(v))
                for t, v in zip(tokens, values, strict=False)  # as neuron-explainer's zip
            ]
            for tokens, values in group
        ]
        for group in groups
    ]


def max_activation(sequences: Sequence[tuple[Sequence[str], Sequence[float]]]) -> float:
    return max((v for _, values in sequences for v in values), default=0.0)


def explainer_record(
    dataset: str,
    top: Sequence[tuple[Sequence[str], Sequence[float]]],
    random: Sequence[tuple[Sequence[str], Sequence[float]]],
    note: str | None = None,
) -> ExplainerRecord:
    top_sequences, random_sequences = token_sequences([top, random])
    return ExplainerRecord(
        dataset=dataset,
        max_activation=max_activation(top),
        top_activations=top_sequences,
        random_sample=random_sequences,
        note=note,
    )


def from_activation_records(
    dataset: str,
    top: Sequence[ActivationRecordLike],
    random: Sequence[ActivationRecordLike],
) -> ExplainerRecord:
    """A neuron-explainer record of its own datasets."""
    return explainer_record(
        dataset,
        [(r.tokens, r.activations) for r in top],
        [(r.tokens, r.activations) for r in random],
    )


# -- attention heads: one value per (token, attended-to token) pair ------------------------------


def attended_lengths(n_tokens: int, n_values: int) -> list[int]:
    """How many tokens each token attends to in a flattened token-pair record: 1, 2, ...,
    m, m, m (a causal window m inferred as neuron-explainer infers it)."""
    full = n_tokens * (n_tokens + 1) // 2
    missing = full - n_values
    k = 0
    while k * (k + 1) // 2 < missing:
        k += 1
    if k * (k + 1) // 2 != missing or k > n_tokens:
        raise ValueError(f"{n_values} values cannot be the token pairs of {n_tokens} tokens")
    window = n_tokens - k
    return [min(i + 1, window) for i in range(n_tokens)]


def _pairs(tokens: Sequence[str], values: Sequence[float]) -> list[list[float]]:
    rows, start = [], 0
    for length in attended_lengths(len(tokens), len(values)):
        rows.append(list(values[start : start + length]))
        start += length
    return rows


def attention_record(
    dataset: str,
    top: Sequence[ActivationRecordLike],
    random: Sequence[ActivationRecordLike],
) -> ExplainerAttentionRecord:
    """neuron-explainer's attention-head shape of a token-pair record: per token the values of
    its attention to each earlier token, and in / out totals and maxima, each on its scale."""
    groups = [
        [(r.tokens, _pairs(r.tokens, r.activations)) for r in records] for records in (top, random)
    ]
    summaries = []  # per group, per sequence, per token: (total in, max in, total out, max out)
    for group in groups:
        per_group = []
        for _, rows in group:
            outs: list[list[float]] = [[] for _ in rows]
            for row in rows:
                for j, value in enumerate(row):
                    outs[j].append(value)
            per_group.append(
                [
                    (sum(row), max(row, default=0.0), sum(out), max(out, default=0.0))
                    for row, out in zip(rows, outs, strict=True)
                ]
            )
        summaries.append(per_group)
    every = [s for per_group in summaries for sequence in per_group for s in sequence]
    scales = [scale([s[i] for s in every]) for i in range(4)]
    pair_scale = scale([v for group in groups for _, rows in group for row in rows for v in row])
    sequences = []
    for group, per_group in zip(groups, summaries, strict=True):
        sequences.append(
            [
                [
                    TokenAndAttentionScalars(
                        token=token,
                        scalars=row,
                        normalized_scalars=[pair_scale(v) for v in row],
                        total_scalar_in=s[0],
                        normalized_total_scalar_in=scales[0](s[0]),
                        max_scalar_in=s[1],
                        normalized_max_scalar_in=scales[1](s[1]),
                        total_scalar_out=s[2],
                        normalized_total_scalar_out=scales[2](s[2]),
                        max_scalar_out=s[3],
                        normalized_max_scalar_out=scales[3](s[3]),
                    )
                    for token, row, s in zip(tokens, rows, summary, strict=True)
                ]
                for (tokens, rows), summary in zip(group, per_group, strict=True)
            ]
        )
    top_values = [v for r in top for v in r.activations]
    return ExplainerAttentionRecord(
        dataset=dataset,
        max_attention_activation=max(top_values, default=0.0),
        most_positive_token_sequences=sequences[0],
        random_token_sequences=sequences[1],
    )
