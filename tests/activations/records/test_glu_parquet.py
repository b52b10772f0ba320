"""The GLU Parquet reader against pyarrow's full read, on small files written here: ours (with
metadata), the published dataset's shape (card columns, no metadata), split files
and a remote file served over HTTP with ranged reads."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activations.io import parquet_parts
from activations.io.errors import (
    NeuronOutOfRangeError,
)
from activations.records.glu_parquet import GluParquetReader
from activations.records.schema import GLU_LAYOUT, METADATA_KEY
from tests.servers import RangeServer

K = 16
N = 40
LAYERS = [0, 1, 2]
ROWS_PER_GROUP = 16  # not a divisor of N: row groups straddle layers


def random_table(layers=LAYERS, n=N, k=K, card_only=False, seed=0) -> pa.Table:
    """Rows sorted by (layer, neuron) with random values; some means NaN, as for empty quadrants."""
    rng = np.random.default_rng(seed)
    rows = len(layers) * n
    fields = GLU_LAYOUT.card_fields() if card_only else list(GLU_LAYOUT.arrow_schema())
    arrays = []
    for field in fields:
        if field.name == "layer":
            arrays.append(pa.array(np.repeat(layers, n).astype(np.int64)))
        elif field.name == "neuron":
            arrays.append(pa.array(np.tile(np.arange(n), len(layers)).astype(np.int64)))
        elif pa.types.is_list(field.type):
            value_type = field.type.value_type
            if pa.types.is_floating(value_type):
                flat = rng.standard_normal(rows * k).astype(np.float32)
            else:
                flat = rng.integers(-1, 10_000, rows * k)
            offsets = pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32))
            arrays.append(pa.ListArray.from_arrays(offsets, pa.array(flat, type=value_type)))
        elif pa.types.is_floating(field.type):
            values = rng.standard_normal(rows)
            values[rng.random(rows) < 0.1] = np.nan
            arrays.append(pa.array(values, type=field.type))
        else:
            arrays.append(pa.array(rng.integers(0, 1000, rows), type=field.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def metadata_for(layers, n=N, k=K) -> dict:
    return {
        "layers": list(layers),
        "n_neurons": n,
        "top_k": k,
        "model": "tiny",
        "corpus": "test",
        "n_documents": 3,
        "n_tokens": 100,
    }


def write(
    table, path, metadata=None, rows_per_group=ROWS_PER_GROUP, statistics=("layer", "neuron"), **kw
):
    if metadata is not None:
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_statistics = list(statistics) if isinstance(statistics, tuple) else statistics
    pq.write_table(
        table,
        path,
        row_group_size=rows_per_group,
        compression="zstd",
        write_statistics=write_statistics,
        **kw,
    )
    return path


def same(a, b) -> bool:
    """Equality with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_reads_everything(dataset: GluParquetReader, expected: pa.Table) -> None:
    rows = expected.to_pylist()
    for row in rows:
        record = dataset.read_record(row["layer"], row["neuron"])
        assert record.keys() == row.keys()
        assert all(same(record[c], row[c]) for c in row), (row["layer"], row["neuron"])


@pytest.fixture
def ours(tmp_path):
    table = random_table()
    return write(table, tmp_path / "ours.parquet", metadata_for(LAYERS)), table


@pytest.fixture
def published(tmp_path):
    """Like the published dataset: card columns only, no metadata, default statistics."""
    table = random_table(card_only=True, seed=1)
    return write(table, tmp_path / "published.parquet", statistics=True), table


# -- reading every record -------------------------------------------------------------------------


@pytest.mark.parametrize("cached_row_groups", [0, 2, 64])
def test_every_record_of_our_file(ours, cached_row_groups):
    path, table = ours
    dataset = GluParquetReader(str(path), cached_row_groups=cached_row_groups)
    assert_reads_everything(dataset, pq.read_table(path))
    assert_reads_everything(dataset, table)


def test_every_record_of_a_published_like_file(published):
    path, table = published
    dataset = GluParquetReader(str(path))
    assert dataset.layers == LAYERS and dataset.n_neurons == N
    assert_reads_everything(dataset, pq.read_table(path))
    assert set(dataset.columns) == {f.name for f in GLU_LAYOUT.card_fields()}


def test_file_without_statistics_reads_its_edges(tmp_path):
    table = random_table(layers=[3, 4, 5, 6], seed=2)
    path = write(table, tmp_path / "nostats.parquet", statistics=False, rows_per_group=7)
    dataset = GluParquetReader(str(path))
    assert dataset.layers == [3, 4, 5, 6] and dataset.n_neurons == N
    assert_reads_everything(dataset, table)


def test_folder_of_two_files_split_mid_layer(tmp_path):
    table = random_table(seed=3)
    # Named so that sorting by name would put them in the wrong order.
    write(table.slice(0, 50), tmp_path / "ds" / "b.parquet", statistics=True)
    write(table.slice(50), tmp_path / "ds" / "a.parquet", statistics=True)
    dataset = GluParquetReader(str(tmp_path / "ds"))
    assert dataset.describe()["n_files"] == 2
    assert_reads_everything(dataset, table)


def test_folder_of_files_each_with_its_own_metadata(tmp_path):
    table = random_table(layers=[0, 1, 2, 3], seed=4)
    write(table.slice(0, 2 * N), tmp_path / "ds" / "part-0.parquet", metadata_for([0, 1]))
    write(table.slice(2 * N), tmp_path / "ds" / "part-1.parquet", metadata_for([2, 3]))
    dataset = GluParquetReader(str(tmp_path / "ds"))
    assert dataset.layers == [0, 1, 2, 3]
    assert_reads_everything(dataset, table)


def test_local_folder_with_a_data_subfolder(tmp_path):
    table = random_table(seed=6)
    write(table, tmp_path / "clone" / "data" / "train-00000-of-00001.parquet")
    assert_reads_everything(GluParquetReader(str(tmp_path / "clone")), table)


def test_file_url(ours):
    path, table = ours
    assert GluParquetReader(path.as_uri()).read_record(2, 39)["neuron"] == 39


def test_concurrent_reads_from_many_threads(ours):
    path, table = ours
    dataset = GluParquetReader(str(path), cached_row_groups=2)
    rows = table.to_pylist() * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        records = list(pool.map(lambda r: dataset.read_record(r["layer"], r["neuron"]), rows))
    assert all(same(rec[c], row[c]) for rec, row in zip(records, rows, strict=True) for c in row)


def test_opening_is_lazy_and_reopens_after_close(ours, tmp_path):
    GluParquetReader(str(tmp_path / "missing.parquet"))  # nothing read yet
    with pytest.raises(FileNotFoundError):
        GluParquetReader(str(tmp_path / "missing.parquet")).describe()
    with pytest.raises(FileNotFoundError, match="no parquet files"):
        (tmp_path / "empty").mkdir()
        GluParquetReader(str(tmp_path / "empty")).describe()
    path, _ = ours
    with GluParquetReader(str(path)) as dataset:
        dataset.read_record(0, 0)
    assert dataset.read_record(1, 1)["neuron"] == 1


# -- ranges, columns, describe --------------------------------------------------------------------


def test_out_of_range_errors_say_the_valid_ranges(ours):
    dataset = GluParquetReader(str(ours[0]))
    with pytest.raises(NeuronOutOfRangeError) as info:
        dataset.read_record(40, 0)
    assert str(info.value) == "layer 40 is out of range: valid layers are 0-2; neurons 0-39"
    assert isinstance(info.value, LookupError)
    for neuron in (40, -1):
        with pytest.raises(NeuronOutOfRangeError, match=r"valid neurons are 0-39; layers 0-2"):
            dataset.read_record(1, neuron)
    with pytest.raises(NeuronOutOfRangeError, match="layer -1 is out of range"):
        dataset.read_record(-1, 0)


def test_layers_not_contiguous_come_from_the_metadata(tmp_path):
    table = random_table(layers=[0, 5, 6, 9], seed=7)
    path = write(table, tmp_path / "some.parquet", metadata_for([0, 5, 6, 9]))
    dataset = GluParquetReader(str(path))
    assert_reads_everything(dataset, table)
    with pytest.raises(NeuronOutOfRangeError, match=r"valid layers are 0, 5-6, 9; neurons 0-39"):
        dataset.read_record(3, 0)


def test_column_subset_reads_only_those_columns(ours, monkeypatch):
    path, table = ours
    dataset = GluParquetReader(str(path))
    dataset.open()
    asked = []
    real = parquet_parts.ParquetPart.read_group

    def spy(self, group, columns):
        asked.append(columns)
        return real(self, group, columns)

    monkeypatch.setattr(parquet_parts.ParquetPart, "read_group", spy)
    wanted = ["gate-_in+_hook_post_max_values", "gate+_in+_freq"]
    record = dataset.read_record(2, 7, columns=wanted)
    assert list(record) == ["layer", "neuron", *wanted]
    row = table.slice(2 * N + 7, 1).to_pylist()[0]
    assert all(same(record[c], row[c]) for c in wanted)
    assert asked == [["layer", "neuron", *wanted]]
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['nope'\]"):
        dataset.read_record(0, 0, columns=["nope"])


def test_cache_serves_neighbours_without_reading(ours, monkeypatch):
    dataset = GluParquetReader(str(ours[0]))
    dataset.read_record(0, 0)
    calls = []
    real = parquet_parts.ParquetPart.read_group
    monkeypatch.setattr(
        parquet_parts.ParquetPart,
        "read_group",
        lambda self, g, c: calls.append(g) or real(self, g, c),
    )
    for neuron in range(ROWS_PER_GROUP):
        dataset.read_record(0, neuron)
    dataset.read_record(0, 0, columns=["gate+_in+_freq"])  # a subset of a cached full group
    assert calls == []
    dataset.read_record(0, ROWS_PER_GROUP)
    assert calls == [1]


def test_describe(ours, published):
    description = GluParquetReader(str(ours[0])).describe()
    assert description["layers"] == LAYERS
    assert description["n_neurons"] == N and description["n_rows"] == 3 * N
    assert description["top_k"] == K
    assert description["metadata"] == metadata_for(LAYERS)
    assert description["columns"] == GLU_LAYOUT.arrow_schema().names
    description = GluParquetReader(str(published[0])).describe()
    assert description["top_k"] == K and description["metadata"] is None
    assert description["columns"] == [f.name for f in GLU_LAYOUT.card_fields()]


# -- broken files ---------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path):
    """(table, file bytes, server): 4 layers of 256 neurons in row groups of 32, over HTTP."""
    table = random_table(layers=[0, 1, 2, 3], n=256, seed=11)
    path = write(table, tmp_path / "remote.parquet", metadata_for(range(4), n=256), 32)
    data = path.read_bytes()
    server = RangeServer({"/remote.parquet": data})
    try:
        yield table, data, server
    finally:
        server.close()


def test_remote_reads_are_ranged(remote):
    table, data, server = remote
    dataset = GluParquetReader(server.url("/remote.parquet"))
    assert dataset.describe()["layers"] == [0, 1, 2, 3]
    footer_bytes = server.bytes_sent
    expected = table.to_pylist()
    record = dataset.read_record(2, 100)
    assert all(same(record[c], expected[2 * 256 + 100][c]) for c in record)
    one_record = server.bytes_sent
    assert one_record < len(data) / 4, (one_record, len(data))
    assert server.requests and all(r and r.startswith("bytes=") for r in server.requests)
    assert one_record - footer_bytes < 2 * len(data) / 32  # about one row group of 32
    dataset.read_record(2, 101)  # same row group: cached
    assert server.bytes_sent == one_record
    before = (server.bytes_sent, len(server.requests))
    record = dataset.read_record(3, 255, columns=["gate+_in+_freq"])
    assert same(record["gate+_in+_freq"], expected[-1]["gate+_in+_freq"])
    # a small row group comes whole in one request: more bytes, one round trip
    assert len(server.requests) == before[1] + 1
    assert server.bytes_sent - before[0] < 2 * len(data) / 32
    dataset.close()


def test_remote_row_groups_over_the_limit_are_read_by_columns(remote, monkeypatch):
    monkeypatch.setattr(parquet_parts, "WHOLE_GROUP_BYTES", 0)
    table, data, server = remote
    dataset = GluParquetReader(server.url("/remote.parquet"))
    dataset.describe()  # opens: the footer
    before = server.bytes_sent
    record = dataset.read_record(3, 255, columns=["gate+_in+_freq"])
    assert same(record["gate+_in+_freq"], table.to_pylist()[-1]["gate+_in+_freq"])
    assert server.bytes_sent - before < len(data) / 100  # three small column chunks
    dataset.close()
