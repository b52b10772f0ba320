"""The GLU quadrant record's column names and Parquet schema, defined once.

Columns follow the published OLMo-7B-0424 neuron-activations dataset exactly (names, order,
dtypes); this project's extensions (max positions, exact float64 sums and counts) come after them.
The quadrants and hooks themselves are the vocabulary's (registry.vocabulary), the column names
registry.columns's (built and parsed there, for the registry too).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from registry.columns import (  # noqa: F401  (the names, re-exported for the record readers)
    KEY_COLUMNS,
    METADATA_KEY,
    count_column,
    freq_column,
    max_indices_column,
    max_positions_column,
    max_values_column,
    mean_column,
    old_sum_column,
    parse_column,
    sum_column,
)
from registry.vocabulary import (
    ALL_TOKENS,
    CARD_HOOK_ORDER,
    GLU_HOOKS,
    HISTOGRAM_HOOK,
    HISTOGRAM_STATISTIC,
    PLAIN_HOOKS,
    QUADRANTS,
    has_max,
)

DEFAULT_TOP_K = 16
# 2: totals named {q}_{hook}_total (a reader of the card's names takes a "_sum" for its "sum"
# statistic); empty top-k slots hold value 0.0 and a real document index, as the published
# files do (position -1 marks them); version 1 files (_sum, index -1) still read and merge.
SCHEMA_VERSION = "2"


def histogram_column(quadrant: str) -> str:
    """Per neuron, the counts of HISTOGRAM_HOOK's values in each bin of the vocabulary's
    histogram over a quadrant's tokens (ALL_TOKENS: over every token) (ours). Named as the
    card names a quadrant's statistics of a hook; the card has no statistic of this name."""
    return f"{quadrant}_{HISTOGRAM_HOOK}_{HISTOGRAM_STATISTIC}"


@dataclass(frozen=True)
class RecordLayout:
    """Which quadrants and hooks a record has: the GLU layout, or the one of plain MLPs."""

    quadrants: tuple[str, ...]
    hooks: tuple[str, ...]

    def max_pairs(self) -> list[tuple[str, str]]:
        return [(q, h) for q in self.quadrants for h in self.hooks if has_max(q, h)]

    def card_fields(self) -> list[pa.Field]:
        """The columns of the published dataset, in its order."""
        fields = [pa.field(name, pa.int64()) for name in KEY_COLUMNS]
        for q in self.quadrants:
            fields.append(pa.field(freq_column(q), pa.float32()))
            for h in CARD_HOOK_ORDER:
                if h not in self.hooks:
                    continue
                if has_max(q, h):
                    fields.append(pa.field(max_values_column(q, h), pa.list_(pa.float32())))
                    fields.append(pa.field(max_indices_column(q, h), pa.list_(pa.int64())))
                fields.append(pa.field(mean_column(q, h), pa.float32()))
        return fields

    def extension_fields(self) -> list[pa.Field]:
        """Ours: positions of each max in its document, and exact sums and counts for merging."""
        fields = [
            pa.field(max_positions_column(q, h), pa.list_(pa.int64())) for q, h in self.max_pairs()
        ]
        for q in self.quadrants:
            fields.append(pa.field(count_column(q), pa.int64()))
            fields.extend(pa.field(sum_column(q, h), pa.float64()) for h in self.hooks)
        return fields

    def histogram_groups(self) -> int:
        """How many groups of tokens a histogram is counted in while collating: each quadrant,
        then the tokens in none (a gate or in of exactly 0)."""
        return len(self.quadrants) + 1

    def histogram_quadrants(self) -> list[str]:
        """The quadrants whose histograms a file holds: every token (ALL_TOKENS) first, then
        each quadrant's (the tokens in none are every token's less the quadrants')."""
        return [ALL_TOKENS, *(q for q in self.quadrants if q != ALL_TOKENS)]

    def histogram_fields(self) -> list[pa.Field]:
        return [
            pa.field(histogram_column(q), pa.list_(pa.int64())) for q in self.histogram_quadrants()
        ]

    def arrow_schema(self, histogram: bool = True) -> pa.Schema:
        extra = self.histogram_fields() if histogram else []
        return pa.schema(self.card_fields() + self.extension_fields() + extra)


GLU_LAYOUT = RecordLayout(quadrants=QUADRANTS, hooks=GLU_HOOKS)
PLAIN_LAYOUT = RecordLayout(quadrants=(ALL_TOKENS,), hooks=PLAIN_HOOKS)


def layout_of_columns(names: list[str]) -> RecordLayout:
    """Which layout a file's columns are in (the published dataset's or ours)."""
    return GLU_LAYOUT if freq_column(QUADRANTS[0]) in names else PLAIN_LAYOUT
