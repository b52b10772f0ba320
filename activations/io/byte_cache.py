"""Byte ranges of remote files kept on disk, bounded: what one record fetched is local for the
next one that shares it (another derived scalar of the same neuron, a neighbour in the same row
group), across restarts.

One folder per remote file version (its URL, size and ETag), one file per fetched range, named
by its offsets; the least recently used ranges go first once the total is over the limit.

What an answer just fetched is kept in memory and written by one background thread (`keep`):
writing a cold neuron's 20 MB took 0.13 s here, which its first answer need not wait for.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from registry.locations import neurons_home

DEFAULT_LIMIT_BYTES = 4 * 2**30
_WRITER: list[ThreadPoolExecutor] = []  # one thread for every cache's background writes
_WRITER_LOCK = threading.Lock()


def _lower_priority() -> None:
    """The writer yields the CPU to answers (Linux: a thread's own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass  # not on this system: writes at the same priority


def _writer() -> ThreadPoolExecutor:
    with _WRITER_LOCK:
        if not _WRITER:
            _WRITER.append(
                ThreadPoolExecutor(
                    1, thread_name_prefix="byte-cache writes", initializer=_lower_priority
                )
            )
        return _WRITER[0]


class ByteCache:
    def __init__(self, root: Path | None = None, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.root = root or neurons_home() / "remote"
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._ranges: dict[str, list[tuple[int, int]]] = {}  # key -> [(start, end)], end exclusive
        self._total: int | None = None  # bytes stored, counted once, then kept up to date
        self._pending: dict[tuple[str, int, int], bytes | memoryview] = {}  # kept, not written yet
        self._discarded: set[tuple[str, int, int]] = set()  # dropped while being written
        self._writes: list[Future] = []

    @staticmethod
    def key(url: str, size: int, etag: str | None) -> str:
        return hashlib.sha256(f"{url}\0{size}\0{etag or ''}".encode()).hexdigest()[:24]

    def _folder(self, key: str) -> Path:
        return self.root / key

    def _known(self, key: str) -> list[tuple[int, int]]:
        with self._lock:
            ranges = self._ranges.get(key)
            if ranges is None:
                ranges = []
                folder = self._folder(key)
                if folder.is_dir():
                    for file in folder.iterdir():
                        start, _, end = file.name.partition("-")
                        if start.isdigit() and end.isdigit():
                            ranges.append((int(start), int(end)))
                self._ranges[key] = ranges
            return list(ranges)

    def covering(self, key: str, start: int, end: int) -> tuple[int, int] | None:
        """A stored range that holds [start, end), if any."""
        for a, b in self._known(key):
            if a <= start and end <= b:
                return a, b
        return None

    def _in_memory(self, key: str, start: int, end: int) -> bytes | memoryview | None:
        with self._lock:
            for (k, a, b), data in self._pending.items():
                if k == key and a <= start and end <= b:
                    return data[start - a : end - a]
        return None

    def read(self, key: str, start: int, end: int) -> bytes | memoryview | None:
        pending = self._in_memory(key, start, end)
        if pending is not None:
            return pending
        found = self.covering(key, start, end)
        if found is None:
            return None
        path = self._folder(key) / f"{found[0]}-{found[1]}"
        try:
            with open(path, "rb") as f:
                f.seek(start - found[0])
                data = f.read(end - start)
            os.utime(path)  # recently used
        except OSError:  # evicted meanwhile
            self._forget(key, found)
            return None
        return data if len(data) == end - start else None

    def missing(self, key: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [
            (a, b)
            for a, b in ranges
            if self._in_memory(key, a, b) is None and self.covering(key, a, b) is None
        ]

    def keep(self, key: str, start: int, data: bytes | memoryview) -> None:
        """Like write, but written by the background thread; read from memory meanwhile."""
        entry = (key, start, start + len(data))
        with self._lock:
            self._pending[entry] = data
            self._writes = [w for w in self._writes if not w.done()]
            try:
                self._writes.append(_writer().submit(self._write_kept, entry))
                return
            except RuntimeError:  # the interpreter is shutting down: written here instead
                pass
        self._write_kept(entry)

    def _write_kept(self, entry: tuple[str, int, int]) -> None:
        with self._lock:
            data = self._pending.get(entry)
            if data is None:  # kept twice (written once already), or discarded before
                self._discarded.discard(entry)
                return
        try:
            self.write(entry[0], entry[1], data)
        except OSError:
            pass  # not kept on disk (full, read-only): fetched again when next needed
        finally:
            with self._lock:
                self._pending.pop(entry, None)
                dropped = entry in self._discarded
                self._discarded.discard(entry)
        if dropped:  # discarded while it was written: what was written goes too
            self.discard(entry[0], [(entry[1], entry[2])])

    def flush(self) -> None:
        """Wait for the background writes of this cache."""
        with self._lock:
            writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def write(self, key: str, start: int, data: bytes | memoryview) -> None:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        end = start + len(data)
        path = folder / f"{start}-{end}"
        tmp = folder / f".{start}-{end}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._known(key)
        with self._lock:
            ranges = self._ranges.setdefault(key, [])
            if (start, end) not in ranges:
                ranges.append((start, end))
                if self._total is not None:
                    self._total += end - start
        if self._stored() > self.limit_bytes:
            self._evict()

    def discard(self, key: str, ranges: list[tuple[int, int]] | None = None) -> int:
        """Drop what is kept of a file (of it all: None), in memory and on disk, where it
        overlaps these ranges: bytes that did not decode are never read from here again.
        Returns the number of ranges dropped."""

        def overlaps(a: int, b: int) -> bool:
            return ranges is None or any(a < end and start < b for start, end in ranges)

        dropped = 0
        with self._lock:
            for entry in [e for e in self._pending if e[0] == key and overlaps(e[1], e[2])]:
                del self._pending[entry]
                self._discarded.add(entry)  # a write under way removes its file afterwards
                dropped += 1
        for a, b in self._known(key):
            if not overlaps(a, b):
                continue
            path = self._folder(key) / f"{a}-{b}"
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                size = 0
            self._forget(key, (a, b))
            with self._lock:
                if self._total is not None:
                    self._total = max(0, self._total - size)
            dropped += 1
        return dropped

    def _forget(self, key: str, found: tuple[int, int]) -> None:
        with self._lock:
            ranges = self._ranges.get(key, [])
            if found in ranges:
                ranges.remove(found)

    def _files(self) -> list[tuple[float, int, Path]]:
        files = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            for file in folder.iterdir() if folder.is_dir() else []:
                if file.name.startswith("."):
                    continue
                try:
                    st = file.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, file))
        return files

    def _stored(self) -> int:
        if self._total is None:
            self._total = sum(size for _, size, _ in self._files())
        return self._total

    def _evict(self) -> None:
        """The least recently used ranges go until the total is within the limit."""
        for _, size, file in sorted(self._files()):
            if self._stored() <= self.limit_bytes:
                return
            file.unlink(missing_ok=True)
            start, _, end = file.name.partition("-")
            self._forget(file.parent.name, (int(start), int(end)))
            with self._lock:
                self._total = (self._total or size) - size
