"""Remote datasets against upstreams that answer wrongly: bytes that do not decode are never
kept (one bad answer poisons nothing, not even after a restart), an answer longer than what was
asked is not read past it, and one that dribbles is left at the deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from activations.io.byte_cache import ByteCache
from activations.io.errors import CorruptDatasetError, UpstreamError, UpstreamTimeoutError
from activations.pools import DaemonPool, PoolTimeoutError, time_left
from activations.records.glu_parquet import GluParquetReader
from tests.activations.records.test_glu_parquet import metadata_for, random_table, same, write
from tests.servers import RangeServer

N = 256


@pytest.fixture
def upstream(tmp_path):
    """(rows, file bytes, server, byte cache folder): 4 layers of 256 neurons, groups of 32."""
    table = random_table(layers=[0, 1, 2, 3], n=N, seed=21)
    path = write(table, tmp_path / "remote.parquet", metadata_for(range(4), n=N), 32)
    server = RangeServer({"/remote.parquet": path.read_bytes()})
    try:
        yield table.to_pylist(), path.read_bytes(), server, tmp_path / "remote-cache"
    finally:
        server.close()


def opened(server: RangeServer, cache: ByteCache, timeout_s: float = 10.0) -> GluParquetReader:
    return GluParquetReader(server.url("/remote.parquet"), byte_cache=cache, timeout_s=timeout_s)


def assert_kept_bytes_are_the_files(root, data: bytes) -> None:
    """Every range on disk holds the file's own bytes at its offsets."""
    kept = [f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")]
    assert kept
    for file in kept:
        start, end = map(int, file.name.split("-"))
        assert file.read_bytes() == data[start:end], file.name


def test_shifted_bytes_once_are_read_again_and_never_kept(upstream):
    rows, data, server, root = upstream
    dataset = opened(server, ByteCache(root))
    dataset.describe()
    server.shift = 1  # the next answer: the right length, every byte moved one place
    record = dataset.read_record(2, 100)
    assert all(same(record[c], rows[2 * N + 100][c]) for c in record)
    assert server.shift == 0  # the bad answer was had, and read again
    dataset.close()
    assert_kept_bytes_are_the_files(root, data)
    again = opened(server, ByteCache(root))  # after a restart: same disk cache
    for layer, neuron in [(2, 100), (2, 101), (0, 0), (3, 255)]:
        record = again.read_record(layer, neuron)
        assert all(same(record[c], rows[layer * N + neuron][c]) for c in record)
    again.close()


def test_an_upstream_that_keeps_shifting_fails_and_then_recovers(upstream):
    rows, data, server, root = upstream
    dataset = opened(server, ByteCache(root))
    dataset.describe()
    server.shift = 10
    with pytest.raises(CorruptDatasetError, match="row group"):
        dataset.read_record(1, 5)
    server.shift = 0  # the upstream is well again: nothing of its bad answers is read
    dataset.byte_cache.flush()
    record = dataset.read_record(1, 5)
    assert all(same(record[c], rows[N + 5][c]) for c in record)
    dataset.close()
    assert_kept_bytes_are_the_files(root, data)


def test_kept_hub_bytes_that_do_not_decode_are_fetched_again(olmo_hub, olmo_replicas):
    """An hf:// file opens from its kept tail (its size and version come from the listing):
    kept bytes that do not decode, tail and data alike, are dropped and fetched anew."""
    from registry.locations import neurons_home

    path = "hf://datasets/sjgerstner/replica-large"
    first = GluParquetReader(path)
    first.read_record(3, 1024)
    first.close()
    kept = [f for f in (neurons_home() / "remote").rglob("*") if f.is_file()]
    assert kept
    for file in kept:  # what shifted answers left on disk before this was mended
        data = file.read_bytes()
        file.write_bytes(data[-1:] + data[:-1])
    again = GluParquetReader(path)  # as after a restart
    record = again.read_record(3, 1024)
    assert (record["layer"], record["neuron"]) == (3, 1024)
    assert again.read_record(3, 1025)["neuron"] == 1025
    again.close()
    third = GluParquetReader(path)  # what was kept the second time decodes
    before = len(olmo_hub.log)
    assert third.read_record(3, 1024)["neuron"] == 1024
    assert not [e for e in olmo_hub.log[before:] if "/resolve/" in e[1]]
    third.close()


def test_an_answer_longer_than_asked_is_not_read_past_it(upstream):
    rows, data, server, root = upstream
    dataset = opened(server, ByteCache(root))
    dataset.describe()
    server.extra = 400 * 2**20  # 400 MB more than the ~20 kB range asked, declared
    with pytest.raises(UpstreamError, match="bytes where .* were asked for"):
        dataset.read_record(2, 7)
    assert server.extra_sent < 8 * 2**20  # refused by its Content-Length, not read
    server.declare_extra, server.extra_sent = False, 0  # the same, undeclared
    with pytest.raises(UpstreamError, match="bytes or more where .* were asked for"):
        dataset.read_record(2, 7)
    assert server.extra_sent < 16 * 2**20  # read up to what was asked, and one byte
    server.extra = 0
    record = dataset.read_record(2, 7)
    assert all(same(record[c], rows[2 * N + 7][c]) for c in record)
    dataset.close()


def test_a_dribbling_answer_is_left_at_the_deadline(upstream):
    rows, data, server, root = upstream
    dataset = opened(server, ByteCache(root), timeout_s=1.0)
    dataset.describe()
    server.dribble_s = 0.05  # each byte of ~20 kB 50 ms apart: 1,000 s for the answer
    with pytest.raises(UpstreamTimeoutError, match="no complete answer within 1 s"):
        dataset.read_record(3, 3)
    assert server.hung_up.wait(30)  # the client left: no thread reads on
    assert server.dribbled < 200
    dataset.close()


def test_a_job_past_its_deadline_asks_the_upstream_nothing_more(upstream):
    """A cold remote record is several requests (footers, then the row group's chunks), each
    with a timeout of its own; run as a pool job with a deadline, each is cut to what is left,
    so the job's thread is free once its caller has had its 504, not several timeouts later."""
    _, _, server, root = upstream
    dataset = opened(server, ByteCache(root), timeout_s=10.0)
    pool = DaemonPool("remote read", 1)
    opening = pool.submit(dataset.describe, deadline=time.monotonic() + 30)
    opening.result(timeout=60)  # within its deadline: opened
    asked = len(server.requests)
    late = pool.submit(dataset.read_record, 1, 5, deadline=time.monotonic() - 1)
    with pytest.raises(PoolTimeoutError, match="past the deadline"):
        late.result(timeout=60)
    assert len(server.requests) == asked  # nothing was asked after the deadline
    assert dataset.read_record(1, 5)  # outside any job: its own timeout alone
    dataset.close()


def test_a_step_cut_short_by_the_deadline_reads_as_the_callers_timeout(upstream):
    """The job's step and its caller's wait end at the same moment: whichever is first, the
    caller is told of its own deadline (never of a step's "within 0.002 s")."""
    _, _, server, root = upstream
    dataset = opened(server, ByteCache(root), timeout_s=10.0)
    dataset.describe()
    server.dribble_s = 0.05
    pool = DaemonPool("remote read", 1)
    cut = pool.submit(dataset.read_record, 3, 3, deadline=time.monotonic() + 0.5)
    with pytest.raises(PoolTimeoutError, match="past the deadline"):
        cut.result(timeout=60)  # the step's own error, were it first
    with pytest.raises(PoolTimeoutError, match="^no answer within 0.5 s$"):
        asyncio.run(pool.run(dataset.read_record, 3, 3, timeout=0.5))
    dataset.close()


def test_time_left_is_the_jobs_deadline_or_the_steps_own():
    assert time_left(7.0) == 7.0  # not in a job
    pool = DaemonPool("cpu", 1)
    assert pool.submit(time_left, 7.0, deadline=time.monotonic() + 1000).result() == 7.0
    assert pool.submit(time_left, 7.0, deadline=time.monotonic() + 2).result() <= 2.0
    assert pool.submit(time_left, 7.0, deadline=time.monotonic() - 1).result() == 0.0
    assert pool.submit(time_left, 7.0).result() == 7.0  # a job without a deadline
