"""A GLU record (without example text) from its file row: which columns an answer reads, and the
record made of them.

A record made from a decoded row group is made on the server's event loop, which every other
request shares, so what does not change from neuron to neuron is worked out once: the columns
an answer reads (per dataset columns and hooks asked) and the file's parsed metadata. The
record is validated in one call (the nested quadrants and examples as plain values), which
gives the models the constructors give, rather than one constructor call per example.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from activations.records.answers import GluNeuronRecord, ValueHistogram
from activations.records.file_metadata import CollationMetadata, read_file_metadata
from activations.records.schema import (
    count_column,
    freq_column,
    has_max,
    histogram_column,
    layout_of_columns,
    max_indices_column,
    max_positions_column,
    max_values_column,
    mean_column,
)
from registry.metadata import NeuronDatasetMetadata
from registry.vocabulary import ALL_TOKENS, histogram_description


@lru_cache(maxsize=256)
def record_columns(available: tuple[str, ...], hooks: tuple[str, ...]) -> tuple[str, ...]:
    """The columns an answer for these hooks' examples reads, of a file's columns: every
    summary (freq, count, means, histograms) and the examples of these hooks only."""
    layout = layout_of_columns(list(available))
    wanted = [freq_column(q) for q in layout.quadrants]
    wanted += [count_column(q) for q in layout.quadrants]
    wanted += [mean_column(q, h) for q in layout.quadrants for h in layout.hooks]
    wanted += [histogram_column(q) for q in layout.histogram_quadrants()]
    for q, h in layout.max_pairs():
        if h in hooks:
            wanted += [max_values_column(q, h), max_indices_column(q, h)]
            wanted.append(max_positions_column(q, h))
    present = set(available)
    return tuple(c for c in wanted if c in present)


@lru_cache(maxsize=256)
def _row_plan(columns: tuple[str, ...], hooks: tuple[str, ...] | None) -> tuple:
    """For a row of these columns: (every hook of its layout, per quadrant its name and
    columns (freq, count, histogram, means by hook, examples by hook))."""
    layout = layout_of_columns(list(columns))
    present = set(columns)
    shown = [h for h in layout.hooks if hooks is None or h in hooks]
    quadrants = []
    for q in layout.quadrants:
        examples = [
            (h, max_values_column(q, h), max_indices_column(q, h), max_positions_column(q, h))
            for h in shown
            if has_max(q, h) and max_values_column(q, h) in present
        ]
        means = [(h, mean_column(q, h)) for h in layout.hooks]
        quadrants.append((q, freq_column(q), count_column(q), histogram_column(q), means, examples))
    return tuple(quadrants)


class FileMetadataOf:
    """A dataset's parsed file metadata, parsed again only when the dataset's raw metadata is
    another object (the dataset was reopened)."""

    def __init__(self) -> None:
        self._last: tuple[Any, CollationMetadata] | None = None

    def __call__(self, raw: dict[str, Any] | None) -> CollationMetadata:
        last = self._last
        if last is not None and last[0] is raw:
            return last[1]
        parsed = read_file_metadata(raw)
        self._last = (raw, parsed)
        return parsed


def _float(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _examples(values: list, docs: list, positions: list | None) -> list[dict[str, Any]]:
    positions = positions or []
    n = len(positions)
    return [
        {"value": value, "document_index": doc, "position": positions[i] if i < n else None}
        for i, (value, doc) in enumerate(zip(values, docs, strict=True))
        # an empty slot: value 0.0 (and index -1 in files of version 1)
        if doc >= 0 and value != 0.0
    ]


def summary_of_row(
    row: dict[str, Any],
    layer: int,
    neuron: int,
    metadata: NeuronDatasetMetadata,
    hook: str,
    all_hooks: bool,
    file_metadata: CollationMetadata,
) -> GluNeuronRecord:
    """The record of a neuron from its row (example text not yet added): for `hook`'s
    examples, or every hook's with `all_hooks`."""
    get = row.get
    quadrants = []
    for q, freq, count, histogram, means, examples in _row_plan(
        tuple(row), None if all_hooks else (hook,)
    ):
        quadrants.append(
            {
                "name": q,
                "freq": _float(get(freq)),
                "count": get(count),
                "means": {h: _float(get(column)) for h, column in means},
                "examples": {
                    h: _examples(row[values], row[docs], get(positions))
                    for h, values, docs, positions in examples
                },
                "histogram": get(histogram),
            }
        )
    return GluNeuronRecord.model_validate(
        {
            "dataset": metadata,
            "layer": layer,
            "neuron": neuron,
            "hook": hook,
            "quadrants": quadrants,
            "histogram": _histogram(row, file_metadata.histogram),
            "file_metadata": file_metadata,
        }
    )


def _histogram(row: dict[str, Any], bins: dict[str, Any] | None) -> ValueHistogram | None:
    """Every token's histogram, in the bins the file names (else the vocabulary's)."""
    counts = row.get(histogram_column(ALL_TOKENS))
    return (
        None
        if counts is None
        else ValueHistogram.of_counts(counts, bins or histogram_description())
    )
