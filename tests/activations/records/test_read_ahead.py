"""Reading ahead: once a local dataset has decoded one row group for a record, the others are
decoded in the background (same answers, no read when they are asked), within half of the
decoded-group budget, at the lowest CPU priority, never for a remote dataset, stopped by closing
and at exit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from activations.io import parquet_parts
from activations.io.errors import CorruptDatasetError
from activations.io.lru import LruCache
from activations.records import read_ahead
from activations.records.glu_parquet import GluParquetReader
from tests.activations.records.test_glu_parquet import (
    LAYERS,
    ROWS_PER_GROUP,
    N,
    metadata_for,
    random_table,
    same,
    write,
)
from tests.servers import RangeServer

GROUPS = len(LAYERS) * N // 16 + 1  # rows of 16 per group; the last one partial
COLUMNS = ["gate+_in+_hook_post_max_values", "gate-_in-_freq"]


def wait_for(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def decoded_everywhere(dataset: GluParquetReader, columns) -> bool:
    return all(
        dataset.decoded_record(layer, neuron, columns) is not None
        for layer in LAYERS
        for neuron in range(N)
    )


@pytest.fixture
def ours(tmp_path):
    table = random_table()
    return write(table, tmp_path / "ours.parquet", metadata_for(LAYERS)), table


def test_the_other_groups_are_decoded_ahead_and_answer_as_a_read_does(ours, monkeypatch):
    path, table = ours
    reads = []
    real = parquet_parts.ParquetPart.read_group
    monkeypatch.setattr(
        parquet_parts.ParquetPart, "read_group", lambda *a: reads.append(a[1]) or real(*a)
    )
    dataset = GluParquetReader(str(path), read_ahead=True)
    assert dataset.decoded_record(2, 39, COLUMNS) is None  # nothing decoded before a read
    dataset.read_record(0, 0, COLUMNS)
    assert wait_for(lambda: decoded_everywhere(dataset, COLUMNS))
    assert sorted(reads) == list(range(GROUPS))  # each group once
    expected = table.to_pylist()
    for i, row in enumerate(expected):
        record = dataset.decoded_record(row["layer"], row["neuron"], COLUMNS)
        read = dataset.read_record(row["layer"], row["neuron"], COLUMNS)
        assert all(same(record[c], row[c]) and same(read[c], row[c]) for c in COLUMNS), i
    assert len(reads) == GROUPS  # the reads after it were all answered from what was decoded
    dataset.close()


def test_without_it_only_the_group_asked_is_decoded(ours):
    path, _ = ours
    dataset = GluParquetReader(str(path))
    dataset.read_record(0, 0, COLUMNS)
    time.sleep(0.3)
    assert dataset.decoded_record(0, 1, COLUMNS) is not None
    assert dataset.decoded_record(2, 39, COLUMNS) is None
    dataset.close()


def test_it_fills_half_of_the_budget_and_no_more(ours):
    path, _ = ours
    one = GluParquetReader(str(path))
    one.read_record(0, 0, COLUMNS)
    group_bytes = one._cache.whole.weight  # one decoded group of these columns
    one.close()
    budget = LruCache(1000, max_weight=group_bytes * 6)  # room for 3 groups in half
    dataset = GluParquetReader(str(path), read_ahead=True, decoded=budget)
    dataset.read_record(0, 0, COLUMNS)
    assert wait_for(lambda: not [t for t in threading.enumerate() if "read ahead" in t.name])
    assert len(budget) == 3 and budget.weight <= group_bytes * 3.1
    dataset.close()


def test_closing_stops_it(ours, monkeypatch):
    path, _ = ours
    real = parquet_parts.ParquetPart.read_group
    slow = threading.Event()

    def read_group(part, group, columns):
        if group > 0:
            slow.set()
            time.sleep(0.2)
        return real(part, group, columns)

    monkeypatch.setattr(parquet_parts.ParquetPart, "read_group", read_group)
    dataset = GluParquetReader(str(path), read_ahead=True)
    dataset.read_record(0, 0, COLUMNS)
    assert slow.wait(10)
    dataset.close()
    assert wait_for(lambda: not [t for t in threading.enumerate() if "read ahead" in t.name])
    assert dataset._cache.whole.weight == 0  # nothing decoded into the closed reader


def test_a_damaged_group_is_skipped_and_said_by_its_request(tmp_path):
    """A corrupt page in group 3: the groups after it are still decoded ahead; a record of
    group 3 says what is wrong and where; the file is read, never written."""
    path = write(random_table(seed=8), tmp_path / "bad.parquet", write_page_checksum=True)
    chunk = pq.ParquetFile(path).metadata.row_group(3).column(5)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    dataset = GluParquetReader(str(path), read_ahead=True)
    dataset.read_record(0, 0)  # every column: the damaged one too
    last = (LAYERS[-1], N - 1)  # the last group, after the damaged one
    assert wait_for(lambda: dataset.decoded_record(*last) is not None)
    with pytest.raises(CorruptDatasetError, match=re.escape(str(path)) + ".*row group 3"):
        dataset.read_record(1, 3 * ROWS_PER_GROUP - N)  # row 48: row group 3
    assert path.read_bytes() == bytes(data)
    dataset.close()


def test_a_remote_dataset_is_not_read_ahead(ours):
    path, _ = ours
    server = RangeServer({"/remote.parquet": Path(path).read_bytes()})
    try:
        dataset = GluParquetReader(server.url("/remote.parquet"), read_ahead=True)
        dataset.read_record(0, 0, COLUMNS)
        sent = server.bytes_sent
        time.sleep(0.5)
        assert server.bytes_sent == sent
        assert dataset.decoded_record(2, 39, COLUMNS) is None
        dataset.close()
    finally:
        server.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice: Linux")
def test_it_runs_at_the_lowest_priority():
    seen = []
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def decode(_):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return True

    read_ahead.start("test", iter([0]), decode, LruCache(10, max_weight=100)).join(10)
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller  # its own only


def test_exit_stops_it_after_the_group_it_decodes(tmp_path):
    script = """
import sys, time
from activations.io.lru import LruCache
from activations.records import read_ahead
def decode(i):
    print("decoding", i, flush=True)
    time.sleep(0.3)
    return True
read_ahead.start("test", iter(range(1000)), decode, LruCache(10, max_weight=100))
time.sleep(0.1)
"""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["decoding", "0"]  # stopped after the first
    assert time.monotonic() - began < 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice: Linux")
@pytest.mark.skipif(os.geteuid() != 0, reason="raising a priority again needs root here")
def test_exit_gives_the_group_it_decodes_the_exiting_priority():
    """At nice 19 on busy cores a group's few milliseconds can take seconds: exiting raises the
    thread's priority back to the exiting thread's before it waits."""
    script = """
import os, threading, time
from activations.io.lru import LruCache
from activations.records import read_ahead
def decode(i):
    time.sleep(0.5)  # exit comes meanwhile
    print(i, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), flush=True)
    return True
read_ahead.start("test", iter(range(1000)), decode, LruCache(10, max_weight=100))
time.sleep(0.1)
print("exiting at", os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), flush=True)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exiting = done.stdout.splitlines()[0].split()[-1]
    assert done.stdout.splitlines()[1:] == [f"0 {exiting}"]  # one group, at the exit's priority
