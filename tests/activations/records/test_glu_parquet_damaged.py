"""The GLU Parquet reader on damaged and disordered files: a broken footer, a truncated file,
corrupt pages, rows out of order or missing, metadata that is not JSON, a remote file that is not
Parquet. Each says what is wrong and where, and breaks no more than it must."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activations.io.errors import (
    CorruptDatasetError,
    DatasetLayoutError,
    NeuronOutOfRangeError,
)
from activations.records.glu_parquet import GluParquetReader
from activations.records.schema import METADATA_KEY
from tests.activations.records.test_glu_parquet import (
    LAYERS,
    ROWS_PER_GROUP,
    N,
    assert_reads_everything,
    metadata_for,
    random_table,
    write,
)
from tests.servers import RangeServer


@pytest.fixture
def ours(tmp_path):
    """A file of ours (with metadata), and its table."""
    table = random_table()
    return write(table, tmp_path / "ours.parquet", metadata_for(LAYERS)), table


def test_corrupted_footer(ours):
    path, _ = ours
    data = bytearray(path.read_bytes())
    data[-200:] = bytes(200)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatasetError, match=re.escape(str(path))):
        GluParquetReader(str(path)).describe()


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_truncated_file(ours, keep):
    path, _ = ours
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptDatasetError, match=re.escape(str(path))) as info:
        GluParquetReader(str(path)).read_record(0, 0)
    assert isinstance(info.value, ValueError)


def test_corrupted_data_pages_fail_on_their_row_group_only(tmp_path):
    table = random_table(seed=8)
    path = write(table, tmp_path / "bad.parquet", write_page_checksum=True)
    chunk = pq.ParquetFile(path).metadata.row_group(3).column(5)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    dataset = GluParquetReader(str(path))
    with pytest.raises(CorruptDatasetError, match=re.escape(str(path)) + ".*row group 3"):
        dataset.read_record(1, 3 * ROWS_PER_GROUP - N)  # row 48: row group 3
    assert dataset.read_record(0, 0)["neuron"] == 0


def test_rows_in_any_order_are_read_through_a_key_index(tmp_path):
    """Rows not sorted by (layer, neuron): every record still reads, through an index built
    once from the key columns and kept under $NEURONS_HOME/indexes."""
    table = random_table(seed=9)
    order = list(range(3 * N))
    order[45], order[46] = order[46], order[45]  # the statistics cannot tell
    rng = np.random.default_rng(3)
    shuffled = rng.permutation(3 * N).tolist()  # the statistics tell at once
    indexes = Path(os.environ["NEURONS_HOME"]) / "indexes"
    for name, rows in (("swapped", order), ("shuffled", shuffled)):
        path = write(table.take(rows), tmp_path / f"{name}.parquet")
        before = set(indexes.glob("*.npz")) if indexes.exists() else set()
        assert_reads_everything(GluParquetReader(str(path)), table)
        assert len(set(indexes.glob("*.npz")) - before) == 1  # kept for the next open


def test_metadata_disagreeing_with_the_rows_gives_way_to_the_rows(tmp_path):
    path = write(random_table(), tmp_path / "lies.parquet", metadata_for([0, 1, 2, 3]))
    dataset = GluParquetReader(str(path))
    assert dataset.describe()["layers"] == [0, 1, 2]
    with pytest.raises(NeuronOutOfRangeError, match="valid layers are 0-2"):
        dataset.read_record(3, 0)


def test_missing_rows_are_out_of_range(tmp_path):
    table = random_table(seed=10)
    write(table.slice(0, 40), tmp_path / "ds" / "0.parquet")
    write(table.slice(60), tmp_path / "ds" / "1.parquet")
    dataset = GluParquetReader(str(tmp_path / "ds"))
    assert dataset.read_record(1, 25)["neuron"] == 25
    with pytest.raises(NeuronOutOfRangeError, match="layer 1 neuron 5 is not in the dataset"):
        dataset.read_record(1, 5)


def test_a_key_twice_is_a_layout_error(tmp_path):
    table = random_table(seed=12)
    path = write(pa.concat_tables([table, table.slice(0, 1)]), tmp_path / "twice.parquet")
    with pytest.raises(DatasetLayoutError, match="layer 0 neuron 0 has more than one row"):
        GluParquetReader(str(path)).describe()


# -- remote ---------------------------------------------------------------------------------------


def test_remote_corrupted_file_names_the_url(tmp_path):
    server = RangeServer({"/junk.parquet": b"not parquet at all" * 100})
    try:
        url = server.url("/junk.parquet")
        with pytest.raises(CorruptDatasetError, match=re.escape(url)):
            GluParquetReader(url).describe()
    finally:
        server.close()


def test_metadata_that_is_not_json(tmp_path):
    table = random_table().replace_schema_metadata({METADATA_KEY: b"{not json"})
    path = write(table, tmp_path / "badmeta.parquet")
    with pytest.raises(CorruptDatasetError, match=re.escape(str(path)) + ".*not JSON"):
        GluParquetReader(str(path)).describe()
