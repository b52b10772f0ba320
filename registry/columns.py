"""The GLU quadrant record's column names, built and parsed in one place.

A column is `{quadrant}_{statistic}` (freq, count) or `{quadrant}_{hook}_{statistic}` (mean,
max_values, max_indices, max_positions, total; version 1 files: sum). The published OLMo
dataset's names are these; our extensions follow the same pattern. Parsing goes by the
quadrant prefix and the statistic suffix, so a hook that is a prefix of another (`hook_pre`,
`hook_pre_linear`) is never mistaken for it. Torch- and Arrow-free, so the registry reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from registry.vocabulary import ALL_TOKENS, QUADRANTS

KEY_COLUMNS: tuple[str, ...] = ("layer", "neuron")
# the Parquet file metadata key under which `neurons collate` writes its own (JSON)
METADATA_KEY = b"neurons"
QUADRANT_STATISTICS: tuple[str, ...] = ("freq", "count")
HOOK_STATISTICS: tuple[str, ...] = (
    "max_values",
    "max_indices",
    "max_positions",
    "mean",
    "total",
    "sum",
)


def freq_column(quadrant: str) -> str:
    return f"{quadrant}_freq"


def mean_column(quadrant: str, hook: str) -> str:
    return f"{quadrant}_{hook}_mean"


def max_values_column(quadrant: str, hook: str) -> str:
    return f"{quadrant}_{hook}_max_values"


def max_indices_column(quadrant: str, hook: str) -> str:
    return f"{quadrant}_{hook}_max_indices"


def max_positions_column(quadrant: str, hook: str) -> str:
    return f"{quadrant}_{hook}_max_positions"


def count_column(quadrant: str) -> str:
    return f"{quadrant}_count"


def sum_column(quadrant: str, hook: str) -> str:
    """The exact float64 total of a hook's values over a quadrant's tokens (ours)."""
    return f"{quadrant}_{hook}_total"


def old_sum_column(quadrant: str, hook: str) -> str:
    """Its name in version 1 files."""
    return f"{quadrant}_{hook}_sum"


class Column(NamedTuple):
    """What a column name says: its quadrant, its hook (None for freq and count), statistic."""

    quadrant: str
    hook: str | None
    statistic: str


def parse_column(name: str) -> Column | None:
    """The parts of a record column's name; None for a key column or another name."""
    for quadrant in (*QUADRANTS, ALL_TOKENS):
        if not name.startswith(f"{quadrant}_"):
            continue
        rest = name[len(quadrant) + 1 :]
        if rest in QUADRANT_STATISTICS:
            return Column(quadrant, None, rest)
        for statistic in HOOK_STATISTICS:
            if rest.endswith(f"_{statistic}") and len(rest) > len(statistic) + 1:
                return Column(quadrant, rest[: -len(statistic) - 1], statistic)
    return None


def hooks_in_columns(names: Iterable[str], quadrants: Iterable[str] = QUADRANTS) -> set[str]:
    """The hooks that columns of these quadrants (the GLU ones by default) hold values of."""
    wanted = set(quadrants)
    return {
        column.hook
        for column in map(parse_column, names)
        if column is not None and column.hook is not None and column.quadrant in wanted
    }
