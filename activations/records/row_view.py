"""One row of a decoded row group as Python values, without converting the rest of the group.

`Table.slice(i, 1).to_pylist()` costs pyarrow's per-column set-up for every column of the
group (about 10 µs each, 45 columns in a record): most of a record made from a decoded group.
A row group's columns are numbers and lists of numbers without nulls, so each column is kept as
numpy views of its buffers (no copy), and a row is a slice of each turned into Python values in
one call of C code. The values are those pyarrow's conversion gives (a float32 widened to a
Python float, an int64 an int); a column of any other type, or with nulls, is converted by
pyarrow as before. The views are made from the buffers with numpy, not with pyarrow's
`to_numpy`, which imports pandas the first time (a fifth of a second or more, on the event loop
of the server's first record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

Getter = Callable[[int], Any]
# the numeric types whose values a numpy view reads as they are stored
_NUMPY = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def _plain_number(type_: pa.DataType) -> bool:
    return type_ in _NUMPY


def _numbers(array: pa.Array) -> np.ndarray:
    """A numeric array without nulls as a numpy view of its data buffer (no copy)."""
    dtype = np.dtype(_NUMPY[array.type])
    data = array.buffers()[1]
    return np.frombuffer(data, dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _getter(column: pa.ChunkedArray) -> Getter:
    """Row i's value of a column, as pyarrow's as_py gives it."""
    array = _one_chunk(column)
    type_ = array.type
    if array.null_count == 0 and _plain_number(type_):
        return _numbers(array).item  # item(i): row i as a Python number
    if (
        array.null_count == 0
        and (pa.types.is_list(type_) or pa.types.is_large_list(type_))
        and _plain_number(type_.value_type)
        and array.values.null_count == 0
    ):
        offsets = array.offsets.to_pylist()  # into the values of the whole (unsliced) list
        flat = _numbers(array.values)
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

    def prepare(self, columns: Iterable[str] | None = None) -> None:
        """Make these columns' row readers now (all: None), so that a row read later only
        reads (a list column's reader holds its offsets as Python ints: most of a first row)."""
        for name in self.table.column_names if columns is None else columns:
            if name not in self._getters:
                self._getters[name] = _getter(self.table.column(name))

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
