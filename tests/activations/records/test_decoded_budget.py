"""Decoded row groups within one budget for every dataset a server reads (a budget per dataset
let memory grow with the number of datasets registered), each reader clearing only its own."""

from __future__ import annotations

from activations.io.lru import LruCache
from activations.records.glu_parquet import GluParquetReader
from activations.session import SessionSettings, Workbench
from activations.sources.source import SourceSettings
from tests.activations.records.test_glu_parquet import (
    LAYERS,
    N,
    assert_reads_everything,
    metadata_for,
    random_table,
    write,
)


def test_two_readers_share_one_budget(tmp_path):
    tables = [random_table(seed=s) for s in (1, 2)]
    paths = [
        write(t, tmp_path / f"d{i}.parquet", metadata_for(LAYERS)) for i, t in enumerate(tables)
    ]
    one_group = GluParquetReader(str(paths[0]))
    one_group.read_record(0, 0)
    (group_bytes,) = [w for _, w in one_group._cache.whole._items.values()]
    shared = LruCache(1000, max_weight=3 * group_bytes)  # three groups of eight (two files)
    readers = [GluParquetReader(str(p), decoded=shared) for p in paths]
    for reader, table in zip(readers, tables, strict=True):
        assert_reads_everything(reader, table)  # each reads its own rows, not the other's
    assert 0 < shared.weight <= 3 * group_bytes and len(shared) == 3  # the second's last three
    assert readers[0].decoded_record(2, N - 1, None) is None  # the first's, gone for them
    readers[0].read_record(2, N - 1)  # decoded again: the second's oldest goes
    readers[1].close()  # a replaced file: its groups go, the other reader's stay
    assert len(shared) == 1 and readers[0].decoded_record(2, N - 1, None) is not None
    assert readers[1].decoded_record(2, N - 1, None) is None


def test_the_session_setting_is_the_one_budget():
    settings = SessionSettings(decoded_cache_mb=3)
    assert settings.source_settings().decoded_bytes == 3 * 2**20
    workbench = Workbench(settings)
    glu = workbench.sources._formats["glu_parquet"]
    assert glu.decoded.max_weight == 3 * 2**20
    a, b = glu.dataset("/nowhere/a.parquet"), glu.dataset("/nowhere/b.parquet")
    assert a._cache.whole is b._cache.whole is glu.decoded
    assert SourceSettings().decoded_bytes == 512 * 2**20
