"""One Parquet file of a dataset (ParquetPart): its footer parsed once, what its row groups'
statistics say of their keys, and reads of a row group's columns (for a remote file: the column
chunks an answer needs, fetched together first).

Reads the published OLMo-7B-0424 dataset (written by `datasets`: no metadata of ours, its own row
group sizes) and the files this project writes (with `neurons` metadata) alike.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from activations.io.dataset_files import DatasetFile
from activations.io.errors import CorruptDatasetError, RecordError
from registry.columns import KEY_COLUMNS, METADATA_KEY

# A remote row group up to this size is fetched whole (one range): its neighbours and the other
# derived scalars of its neurons are then local. Larger ones are fetched by column chunks.
WHOLE_GROUP_BYTES = 8 * 2**20
# Per-file readers kept idle for reuse; more are opened (sharing the parsed footer) under load.
MAX_IDLE_READERS = 4


def use_steady_memory_pool() -> str:
    """Decode with jemalloc (else the system allocator) rather than pyarrow's default mimalloc,
    whose first large allocations on each new thread fault in their pages: a server's first
    decode of a 34,530-row group took 0.40 s with it against 0.15 s. Process-wide; the server
    calls it at start. Returns the pool's name."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return pool.backend_name


def is_corruption(exc: BaseException) -> bool:
    """Arrow's own errors mean a bad file; OSError subclasses (connection, timeout, missing
    file) come from the file system and mean the file could not be reached."""
    return isinstance(exc, pa.ArrowException) or type(exc) is OSError


def format_ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → '0-2, 5, 7-8'."""
    spans: list[list[int]] = []
    for v in values:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


@dataclass(frozen=True)
class KeyStats:
    """A row group's smallest and largest layer and neuron, from its statistics."""

    layer: tuple[int, int]
    neuron: tuple[int, int]


class ParquetPart:
    """One file, with a pool of open readers sharing its footer, so concurrent reads of one file
    neither block nor re-read it."""

    def __init__(self, file: DatasetFile) -> None:
        self.name = file.name
        self.file = file
        self._idle: list[pq.ParquetFile] = []
        self._lock = threading.Lock()
        try:
            reader = self._open_footer()
        except CorruptDatasetError:
            if file.remote is None:
                raise
            # what was kept of it may be what did not decode: dropped, and read once more
            file.remote.forget()
            try:
                reader = self._open_footer()
            except CorruptDatasetError:
                file.remote.forget()  # nothing that does not decode stays
                raise
        self._idle.append(reader)
        self.metadata: pq.FileMetaData = reader.metadata
        self.schema: pa.Schema = reader.schema_arrow
        self.num_rows = self.metadata.num_rows
        sizes = [self.metadata.row_group(i).num_rows for i in range(self.metadata.num_row_groups)]
        self.group_starts = [0]
        for n in sizes:
            self.group_starts.append(self.group_starts[-1] + n)
        self.file_metadata = self._neurons_metadata()
        self.key_stats = [self._key_stats(g) for g in range(len(sizes))]
        # Set when the dataset is assembled: position in it, and global row of the first row.
        self.index = 0
        self.start = 0

    def _open_footer(self) -> pq.ParquetFile:
        try:
            return self.file.open(None)
        except RecordError:
            raise
        except Exception as exc:
            if is_corruption(exc):
                raise CorruptDatasetError(
                    f"{self.name}: not a readable Parquet file: {exc}"
                ) from exc
            raise

    def _neurons_metadata(self) -> dict[str, Any] | None:
        raw = (self.metadata.metadata or {}).get(METADATA_KEY)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise CorruptDatasetError(
                f"{self.name}: the {METADATA_KEY.decode()!r} metadata is not JSON: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise CorruptDatasetError(
                f"{self.name}: the {METADATA_KEY.decode()!r} metadata is not a JSON object"
            )
        return value

    def _key_stats(self, group: int) -> KeyStats | None:
        rg = self.metadata.row_group(group)
        found = {}
        for j in range(rg.num_columns):
            column = rg.column(j)
            if column.path_in_schema in KEY_COLUMNS:
                s = column.statistics
                if s is None or not s.has_min_max:
                    return None
                found[column.path_in_schema] = (int(s.min), int(s.max))
        if len(found) != 2:
            return None
        return KeyStats(found["layer"], found["neuron"])

    def top_k(self) -> int | None:
        """Length of the max lists, from the footer alone: the metadata's top_k, else a list
        column's values per row (every list holds k)."""
        meta = self.file_metadata or {}
        if isinstance(meta.get("top_k"), int):
            return meta["top_k"]
        rg = self.metadata.row_group(0)
        for j in range(rg.num_columns):
            column = rg.column(j)
            if column.path_in_schema.split(".")[0].endswith("_max_values") and rg.num_rows:
                per_row, rest = divmod(column.num_values, rg.num_rows)
                return per_row if rest == 0 else None
        return None

    # -- reading ---------------------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[pq.ParquetFile]:
        with self._lock:
            reader = self._idle.pop() if self._idle else None
        if reader is None:
            reader = self.file.open(self.metadata)
        try:
            yield reader
        finally:
            with self._lock:
                keep = len(self._idle) < MAX_IDLE_READERS
                if keep:
                    self._idle.append(reader)
            if not keep:
                reader.close()

    def reads_whole(self, group: int) -> bool:
        """Whether a remote row group is fetched with all its columns (WHOLE_GROUP_BYTES)."""
        if self.file.remote is None:
            return False
        rg = self.metadata.row_group(group)
        return sum(rg.column(j).total_compressed_size for j in range(rg.num_columns)) <= (
            WHOLE_GROUP_BYTES
        )

    def chunk_ranges(self, group: int, columns: list[str] | None) -> list[tuple[int, int]]:
        """The byte ranges [start, end) of these columns' chunks in a row group (all: None)."""
        rg = self.metadata.row_group(group)
        ranges = []
        for j in range(rg.num_columns):
            column = rg.column(j)
            if columns is not None and column.path_in_schema.split(".")[0] not in columns:
                continue
            start = column.data_page_offset
            if column.has_dictionary_page and 0 < column.dictionary_page_offset < start:
                start = column.dictionary_page_offset
            ranges.append((start, start + column.total_compressed_size))
        if columns is None and ranges:  # the whole group: one span
            return [(min(a for a, _ in ranges), max(b for _, b in ranges))]
        return ranges

    def read_group(self, group: int, columns: list[str] | None) -> pa.Table:
        """A row group's columns. A remote one that does not decode (an upstream that sent
        wrong bytes once) is dropped from the disk cache and read once more: bytes are kept
        only while they decode, and one bad answer poisons nothing."""
        try:
            return self._read_group(group, columns)
        except CorruptDatasetError:
            remote = self.file.remote
            if remote is None:
                raise
            remote.forget(self.chunk_ranges(group, None))
            try:
                return self._read_group(group, columns)
            except CorruptDatasetError:
                remote.forget(self.chunk_ranges(group, None))
                raise

    def _read_group(self, group: int, columns: list[str] | None) -> pa.Table:
        try:
            remote = self.file.remote
            if remote is not None:  # one request for every chunk the read needs
                remote.fetch(self.chunk_ranges(group, columns))
            with self.reader() as pf:  # a remote group's columns decoded side by side: its
                # first read waits on them (a local file's reads stay on the pool's thread)
                return pf.read_row_group(group, columns=columns, use_threads=remote is not None)
        except RecordError:
            raise
        except Exception as exc:
            if is_corruption(exc):
                raise CorruptDatasetError(
                    f"{self.name}: row group {group} is unreadable (corrupted or truncated "
                    f"file): {exc}"
                ) from exc
            raise

    def keys(self, group: int) -> tuple[Any, Any]:
        """The layer and neuron of every row of a row group, as numpy arrays."""
        table = self.read_group(group, list(KEY_COLUMNS))
        return table.column("layer").to_numpy(), table.column("neuron").to_numpy()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.close()
