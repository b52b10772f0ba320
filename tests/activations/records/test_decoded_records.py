"""A record whose row group is decoded already is answered without reading the file (on the
caller's thread: the server's event loop), and is the record a read gives; one whose group is
not decoded, or that does not exist, is left to the read, which says what is wrong."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from activations.pools import Pools
from activations.records.glu_parquet import GluParquetReader
from activations.sources.glu_source import GluParquetFormat
from activations.sources.source import RecordQuery, SourceSettings
from registry.metadata import NeuronDatasetMetadata
from tests.activations.records.test_glu_parquet import (
    LAYERS,
    ROWS_PER_GROUP,
    N,
    metadata_for,
    ours,
    random_table,
    same,
    write,
)

__all__ = ["ours"]  # the fixture, shared


def format_and_source(path) -> tuple[GluParquetFormat, object]:
    """The GLU format (its caches) and the source of the file as the dataset `ours`."""
    metadata = NeuronDatasetMetadata(
        short_name="ours", derived_scalar_type="mlp_post_act", user_visible_name="Ours",
        neuron_dataset_path=str(path), format="glu_parquet",
    )  # fmt: skip
    records = GluParquetFormat(None, SourceSettings(), Pools())
    return records, records.source(metadata)


def test_a_decoded_group_answers_its_rows_without_a_read(ours):
    path, _ = ours
    rows = pq.read_table(ours[0]).to_pylist()
    dataset = GluParquetReader(str(path))
    assert dataset.decoded_record(0, 0) is None  # not open: nothing decoded
    first = dataset.read_record(0, 0)
    assert all(same(first[c], rows[0][c]) for c in rows[0])
    for i in range(1, ROWS_PER_GROUP):  # the rest of the first group: decoded already
        row = rows[i]
        found = dataset.decoded_record(row["layer"], row["neuron"])
        assert found is not None and found.keys() == row.keys()
        assert all(same(found[c], row[c]) for c in row), i
    beyond = rows[ROWS_PER_GROUP]
    assert dataset.decoded_record(beyond["layer"], beyond["neuron"]) is None  # next group
    assert dataset.decoded_record(len(LAYERS), 0) is None  # no such layer: the read says so
    assert dataset.decoded_record(0, N) is None


def test_the_source_answers_a_neighbour_without_the_pool(ours, monkeypatch):
    records, source = format_and_source(ours[0])

    async def read() -> tuple:
        first = await source.record(0, 1, RecordQuery())
        hops = []
        real = records.pools.local.run

        async def counted(*args, **kwargs):
            hops.append(args[0])
            return await real(*args, **kwargs)

        monkeypatch.setattr(records.pools.local, "run", counted)
        neighbour = await source.record(0, 2, RecordQuery())  # the same row group
        far = await source.record(2, N - 1, RecordQuery())  # another one: read in the pool
        return first, neighbour, far, hops

    try:
        first, neighbour, far, hops = asyncio.run(read())
    finally:
        records.pools.shutdown()
    assert (neighbour.layer, neighbour.neuron) == (0, 2) and neighbour.quadrants
    assert len(hops) == 1 and (far.layer, far.neuron) == (2, N - 1)
    rows = pq.read_table(ours[0]).to_pylist()
    want = rows[2]
    for quadrant in neighbour.quadrants:
        assert same(quadrant.freq, want[f"{quadrant.name}_freq"])


def test_rows_with_nulls_and_other_number_types_read_as_pyarrow_reads_them(tmp_path):
    """Null scalars, null lists and null items, float64 lists and int32 counts: every row, read
    or taken from its decoded group, is pyarrow's own row."""
    table = random_table(seed=2)
    rng = np.random.default_rng(5)
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.to_pylist()
        if name.endswith("_positions"):
            values = [None if rng.random() < 0.1 else [None, *v[1:]] for v in values]
        elif name.endswith(("_freq", "_mean")):
            values = [None if rng.random() < 0.1 else v for v in values]
        kind = column.type
        if name.endswith("_max_values"):
            kind = pa.list_(pa.float64())
        elif name.endswith("_count"):
            kind = pa.int32()
        columns.append(pa.array(values, type=kind))
    odd = pa.Table.from_arrays(columns, names=table.column_names)
    path = write(odd, tmp_path / "odd.parquet", metadata_for(LAYERS))
    rows = pq.read_table(path).to_pylist()
    dataset = GluParquetReader(str(path))
    some = ["gate+_in+_count", "gate-_in-_hook_post_max_positions", "gate+_in-_freq"]
    for row in rows:
        key = (row["layer"], row["neuron"])
        read = dataset.read_record(*key)
        assert read.keys() == row.keys() and all(same(read[c], row[c]) for c in row), key
        decoded = dataset.decoded_record(*key, columns=some)
        assert decoded is not None and list(decoded) == ["layer", "neuron", *some]
        assert all(same(decoded[c], row[c]) for c in decoded), key


def test_a_record_asked_not_to_be_kept_is_made_but_not_kept(ours):
    records, source = format_and_source(ours[0])

    async def read() -> tuple:
        not_kept = await source.record(0, 1, RecordQuery(kept=False))
        size = len(records.cache)
        kept = await source.record(0, 1, RecordQuery())
        return not_kept, size, kept, await source.record(0, 1, RecordQuery(kept=False))

    try:
        not_kept, size, kept, again = asyncio.run(read())
    finally:
        records.pools.shutdown()
    assert size == 0 and len(records.cache) == 1
    assert not_kept == kept and again is kept  # a kept record is given to every ask
