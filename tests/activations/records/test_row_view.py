"""A decoded row group's rows read through numpy views are the rows pyarrow's conversion gives,
for every column type a record file holds (and others, converted by pyarrow), sliced or not."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activations.records.row_view import RowView


def table() -> pa.Table:
    n = 7
    return pa.table(
        {
            "layer": pa.array(range(n), pa.int64()),
            "neuron": pa.array(range(10, 10 + n), pa.int32()),
            "freq": pa.array([i / 3 for i in range(n)], pa.float32()),
            "mean": pa.array([i / 7 for i in range(n)], pa.float64()),
            "small": pa.array(range(n), pa.uint8()),
            "values": pa.array([[i * 0.5, -i, 1e-3] for i in range(n)], pa.list_(pa.float32())),
            "indices": pa.array([[i, i + 1][: i % 3] for i in range(n)], pa.list_(pa.int64())),
            "counts": pa.array([[i] * i for i in range(n)], pa.large_list(pa.int64())),
            "name": pa.array([f"n{i}" for i in range(n)]),  # not a number: pyarrow converts
            "gaps": pa.array([None if i % 2 else i for i in range(n)], pa.int64()),
            "half": pa.array([i / 4 for i in range(n)], pa.float16()),
        }
    )


@pytest.mark.parametrize("start", [0, 2])
def test_every_row_is_pyarrows_row(start):
    whole = table()
    part = whole.slice(start)  # a slice: its buffers begin before its first row
    expected = part.to_pylist()
    view = RowView(part)
    assert view.num_rows == len(expected)
    for i, row in enumerate(expected):
        assert view.row(i) == row
        assert all(type(view.row(i)[k]) is type(v) for k, v in row.items())
    assert list(view.row(1, ["values", "layer"])) == ["values", "layer"]  # the order asked


def test_a_column_of_several_chunks_reads_as_one():
    chunks = pa.concat_tables([table(), table().slice(3)])
    assert [RowView(chunks).row(i) for i in range(chunks.num_rows)] == chunks.to_pylist()


def test_reading_rows_does_not_import_pandas(tmp_path):
    """pyarrow's to_numpy imports pandas the first time (a fifth of a second or more): a
    server's first record, made on its event loop, would wait for it. Reading a row group
    does not import it, and nor does reading a row of it."""
    path = tmp_path / "rows.parquet"
    pq.write_table(table(), path)
    code = (
        "import sys, pyarrow.parquet as pq\n"
        "from activations.records.row_view import RowView\n"
        f"group = pq.ParquetFile({str(path)!r}).read_row_group(0)\n"
        "assert RowView(group).row(3)['values'] == [1.5, -3.0, 0.0010000000474974513]\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
