"""The disk cache of remote byte ranges: what an answer just fetched is readable at once, from
memory, and on disk for the next process once written; the limit holds."""

from __future__ import annotations

import os

from activations.io.byte_cache import ByteCache


def test_kept_bytes_are_read_before_and_after_they_are_written(tmp_path):
    cache = ByteCache(tmp_path)
    data = os.urandom(100_000)
    body = memoryview(b"head" + data)  # a part of a multipart answer: a view, not a copy
    cache.keep("file", 1000, body[4:])
    assert bytes(cache.read("file", 1010, 1020)) == data[10:20]
    assert cache.missing("file", [(1000, 101_000), (0, 10)]) == [(0, 10)]
    cache.flush()
    stored = tmp_path / "file" / "1000-101000"
    assert stored.read_bytes() == data
    again = ByteCache(tmp_path)  # another process, later
    assert again.read("file", 1000, 101_000) == data
    assert again.missing("file", [(2000, 3000)]) == []


def test_a_range_that_cannot_be_written_is_fetched_again(tmp_path):
    root = tmp_path / "cache"
    root.write_text("a file where the cache's folder should be")
    cache = ByteCache(root)
    cache.keep("file", 0, b"abc")
    cache.flush()  # the write failed; nothing raised, nothing kept
    assert cache.read("file", 0, 3) is None
    assert cache.missing("file", [(0, 3)]) == [(0, 3)]


def test_the_limit_evicts_the_least_recently_used(tmp_path):
    cache = ByteCache(tmp_path, limit_bytes=250)
    for i in range(3):
        cache.keep("file", i * 100, bytes([i]) * 100)
        cache.flush()
        os.utime(tmp_path / "file" / f"{i * 100}-{i * 100 + 100}", (i, i))
    assert cache.read("file", 0, 100) is None  # the oldest went
    assert cache.read("file", 200, 300) == bytes([2]) * 100
