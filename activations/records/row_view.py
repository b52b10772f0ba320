"""One row of a decoded row group as Python values, without converting the rest of the group.

`Table.slice(i, 1).to_pylist()` costs pyarrow's per-column set-up for every column of the
group (about 10 µs each, 45 columns in a record): most of a record made from a decoded group.
A row group's columns are numbers and lists of numbers without nulls, so each column is kept as
numpy views of its buffers (no copy), and a row is a slice of each turned into Python values in
one call of C code. The values are those pyarrow's conversion gives (a float32 widened to a
Python float, an int64 an int); a column of any other type, or with nulls, is converted by
pyarrow as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.types as pt

Getter = Callable[[int], Any]


def _plain_number(type_: pa.DataType) -> bool:
    return pt.is_integer(type_) or (pt.is_floating(type_) and not pt.is_float16(type_))


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _getter(column: pa.ChunkedArray) -> Getter:
    """Row i's value of a column, as pyarrow's as_py gives it."""
    array = _one_chunk(column)
    type_ = array.type
    if array.null_count == 0 and _plain_number(type_):
        return array.to_numpy(zero_copy_only=True).item  # item(i): row i as a Python number
    if (
        array.null_count == 0
        and (pt.is_list(type_) or pt.is_large_list(type_))
        and _plain_number(type_.value_type)
        and array.values.null_count == 0
    ):
        offsets = array.offsets.to_pylist()
        flat = array.values.to_numpy(zero_copy_only=True)
        return lambda i: flat[offsets[i] : offsets[i + 1]].tolist()
    return lambda i: array[i].as_py()


class RowView:
    """A decoded row group (its table), with each column's row reader made on first use."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._getters: dict[str, Getter] = {}

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def row(self, index: int, columns: Iterable[str] | None = None) -> dict[str, Any]:
        """Row `index` of these columns (all: None), in the order asked (else the table's)."""
        getters = self._getters
        out = {}
        for name in self.table.column_names if columns is None else columns:
            getter = getters.get(name)
            if getter is None:
                getter = getters[name] = _getter(self.table.column(name))
            out[name] = getter(index)
        return out
