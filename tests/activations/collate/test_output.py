"""Output files: checked before any work, published with the umask's permissions, never over a
file that appeared during the run, and no temporaries left by a killed run."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import registry
from activations.collate import CollateConfig, collate
from activations.collate.output import remove_stale, temporary_beside
from activations.collate.writer import write_table_atomically
from registry.columns import KEY_COLUMNS
from tests.activations.records.test_glu_parquet import random_table
from tests.tiny import random_documents, write_jsonl


@pytest.fixture
def config(tmp_path, tiny_models):
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(5, seed=2))

    def make(**overrides) -> CollateConfig:
        settings = dict(
            model="tiny-llama",
            out=str(tmp_path / "out.parquet"),
            corpus=str(corpus),
            top_k=2,
            batch_size=2,
            engine="eager",
            progress=False,
        )
        return CollateConfig(**(settings | overrides))

    return make


def test_the_file_has_the_umasks_permissions(config, tmp_path):
    old = os.umask(0o022)
    try:
        out = collate(config())
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_folder_as_output_is_refused_before_any_work(config, tmp_path, monkeypatch):
    (tmp_path / "folder").mkdir()
    from activations.collate import run

    monkeypatch.setattr(run, "load_model", lambda *a, **k: pytest.fail("the model loaded"))
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="is a folder; --out takes the path of a .parquet"):
            collate(config(out=str(tmp_path / "folder"), overwrite=overwrite))


def test_a_file_created_during_the_run_is_not_replaced(config, tmp_path):
    out = tmp_path / "out.parquet"

    def someone_else_writes(next_doc: int) -> None:
        if not out.exists():
            out.write_bytes(b"precious")

    with pytest.raises(FileExistsError, match="was created while this run worked") as info:
        collate(config(), on_batch=someone_else_writes)
    assert out.read_bytes() == b"precious"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]
    assert len(kept) == 1 and str(kept[0]) in str(info.value)
    assert pq.read_table(kept[0]).num_rows == 2 * 24  # the run's result is kept


def test_temporaries_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "out.parquet"
    dead = tmp_path / f".out.parquet.{2**22 + 12345}.0a1b2c3d.tmp"  # no such process
    alive = tmp_path / f".out.parquet.{os.getpid()}.0a1b2c3d.tmp"  # this one runs
    other = tmp_path / ".other.parquet.1.0a1b2c3d.tmp"
    for path in (dead, alive, other):
        path.write_bytes(b"half")
    assert remove_stale(out) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()
    fresh = temporary_beside(out)
    assert fresh.name.startswith(f".out.parquet.{os.getpid()}.") and fresh.parent == tmp_path


def test_one_value_columns_are_stored_plain_and_lists_in_zstd(tmp_path):
    """A record file as every writer writes it (parquet_options): each one-value-per-row
    column's chunks uncompressed, each list's in zstd, the key columns with dictionary pages
    and statistics; the rows read back as written."""
    table = random_table(layers=[0, 1], n=40, seed=3)
    path = tmp_path / "records.parquet"
    write_table_atomically(table, path, rows_per_group=16)
    file = pq.ParquetFile(path)
    lists = {f.name for f in table.schema if pa.types.is_list(f.type)}
    assert lists and len(lists) < len(table.schema)  # both kinds are there
    for group in range(file.metadata.num_row_groups):
        row_group = file.metadata.row_group(group)
        for j in range(row_group.num_columns):
            chunk = row_group.column(j)
            name = chunk.path_in_schema.split(".")[0]
            assert chunk.compression == ("ZSTD" if name in lists else "UNCOMPRESSED"), name
            assert chunk.is_stats_set == (name in KEY_COLUMNS), name
            assert chunk.has_dictionary_page == (name in KEY_COLUMNS), name
    # every value as written (repr: its empty quadrants' NaN means compare equal)
    assert repr(file.read().to_pylist()) == repr(table.to_pylist())
