"""The files of a Parquet dataset: each file's footer and key range (ParquetPart), and the
layout they make together (assemble): layers, neurons per layer and where each row lives.

Reads the published OLMo-7B-0424 dataset (no file metadata) and the files this project writes
(with `neurons` metadata) alike: rows sorted by (layer, neuron), every layer with the same number
of neurons. Footers only: no data is read to learn the layout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activations.records.errors import CorruptDatasetError, DatasetLayoutError
from activations.records.schema import KEY_COLUMNS, METADATA_KEY

# A remote row group up to this size is fetched whole, in one request, rather than by columns.
WHOLE_GROUP_BYTES = 8 * 2**20
# Per-file readers kept idle for reuse; more are opened (sharing the parsed footer) under load.
MAX_IDLE_READERS = 4


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


# Opens a reader of one file: given the parsed footer (or None the first time), returns the
# ParquetFile and what to close with it.
Opener = Callable[["pq.FileMetaData | None"], "tuple[pq.ParquetFile, Any]"]


class ParquetPart:
    """One file: its footer parsed once, its first and last (layer, neuron), and a pool of open
    readers sharing that footer, so concurrent reads of one file neither block nor re-read it."""

    def __init__(self, name: str, opener: Opener, whole_groups: bool = False) -> None:
        self.name = name
        self._opener = opener
        # Remote files: read every column of a small row group, one contiguous span that
        # pre-buffering fetches in one ranged request; a subset leaves gaps, and each gap
        # costs a round trip (13 of them for one record's columns of our files).
        self.whole_groups = whole_groups
        self._reads_whole: dict[int, bool] = {}
        self._idle: list[tuple[pq.ParquetFile, Any]] = []
        self._lock = threading.Lock()
        try:
            reader = opener(None)
        except Exception as exc:
            if is_corruption(exc):
                raise CorruptDatasetError(f"{name}: not a readable Parquet file: {exc}") from exc
            raise
        self._idle.append(reader)
        pf = reader[0]
        self.metadata: pq.FileMetaData = pf.metadata
        self.schema: pa.Schema = pf.schema_arrow
        self.num_rows = self.metadata.num_rows
        groups = [self.metadata.row_group(i).num_rows for i in range(self.metadata.num_row_groups)]
        self.group_starts = [0]
        for n in groups:
            self.group_starts.append(self.group_starts[-1] + n)
        self.first_key: tuple[int, int] = (0, 0)
        self.last_key: tuple[int, int] = (0, 0)
        try:
            self.file_metadata = self._neurons_metadata()
            if self.num_rows:
                self.first_key = self._edge_key(0, first=True)
                self.last_key = self._edge_key(len(groups) - 1, first=False)
        except BaseException:
            self.close()
            raise
        # Set when the dataset is assembled: position in it, and global row of the first row.
        self.index = 0
        self.start = 0

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

    def _edge_key(self, group: int, first: bool) -> tuple[int, int]:
        """(layer, neuron) of the first or last row of a row group: from its statistics when
        the group holds a single layer, else by reading just the two key columns."""
        rg = self.metadata.row_group(group)
        stats = {}
        for j in range(rg.num_columns):
            column = rg.column(j)
            if column.path_in_schema in KEY_COLUMNS:
                s = column.statistics
                if s is not None and s.has_min_max:
                    stats[column.path_in_schema] = (s.min, s.max)
        if len(stats) == 2 and stats["layer"][0] == stats["layer"][1]:
            layer = int(stats["layer"][0])
            neuron = stats["neuron"][0] if first else stats["neuron"][1]
            return layer, int(neuron)
        keys = self.read_group(group, list(KEY_COLUMNS))
        row = 0 if first else keys.num_rows - 1
        return int(keys.column("layer")[row].as_py()), int(keys.column("neuron")[row].as_py())

    @contextmanager
    def reader(self) -> Iterator[pq.ParquetFile]:
        with self._lock:
            reader = self._idle.pop() if self._idle else None
        if reader is None:
            reader = self._opener(self.metadata)
        try:
            yield reader[0]
        finally:
            with self._lock:
                keep = len(self._idle) < MAX_IDLE_READERS
                if keep:
                    self._idle.append(reader)
            if not keep:
                _close(reader)

    def reads_whole(self, group: int) -> bool:
        """Whether a row group is read with all its columns (see whole_groups)."""
        if not self.whole_groups:
            return False
        whole = self._reads_whole.get(group)
        if whole is None:  # once per group: every lookup, cached or not, asks
            rg = self.metadata.row_group(group)
            size = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
            whole = self._reads_whole[group] = size <= WHOLE_GROUP_BYTES
        return whole

    def read_group(self, group: int, columns: list[str] | None) -> pa.Table:
        try:
            with self.reader() as pf:
                return pf.read_row_group(group, columns=columns, use_threads=False)
        except Exception as exc:
            if is_corruption(exc):
                raise CorruptDatasetError(
                    f"{self.name}: row group {group} is unreadable (corrupted or truncated "
                    f"file): {exc}"
                ) from exc
            raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            _close(reader)


def _close(reader: tuple[pq.ParquetFile, Any]) -> None:
    pf, handle = reader
    pf.close()
    if handle is not None:
        handle.close()


@dataclass(frozen=True)
class DatasetLayout:
    parts: list[ParquetPart]
    part_starts: list[int]  # global row of each part's first row, then the total
    layers: list[int]
    layer_position: dict[int, int]
    n_neurons: int
    columns: list[str]
    metadata: dict[str, Any] | None

    @property
    def n_rows(self) -> int:
        return self.part_starts[-1]


def assemble(parts: list[ParquetPart]) -> DatasetLayout:
    """Order the files by their first (layer, neuron), find the layers and neurons per layer
    (from the metadata if any, else from the first and last rows), and check that every file
    starts and ends where that layout says."""
    parts = [p for p in parts if p.num_rows]
    if not parts:
        raise CorruptDatasetError("the dataset has no rows")
    columns = parts[0].schema.names
    for part in parts:
        missing = [c for c in KEY_COLUMNS if c not in part.schema.names]
        if missing:
            raise DatasetLayoutError(f"{part.name}: no {' or '.join(missing)} column")
        if part.schema.names != columns:
            raise DatasetLayoutError(f"{part.name}: columns differ from those of {parts[0].name}")
    parts.sort(key=lambda p: p.first_key)
    n_rows = sum(p.num_rows for p in parts)
    metas = [p.file_metadata for p in parts if p.file_metadata is not None]

    if metas and all("layers" in m and "n_neurons" in m for m in metas):
        layers = sorted({int(layer) for m in metas for layer in m["layers"]})
        n_neurons_seen = {int(m["n_neurons"]) for m in metas}
        if len(n_neurons_seen) != 1:
            raise DatasetLayoutError(
                f"the files' metadata disagree on n_neurons: {sorted(n_neurons_seen)}"
            )
        n_neurons = n_neurons_seen.pop()
        if n_rows != len(layers) * n_neurons:
            raise DatasetLayoutError(
                f"{len(layers)} layers x {n_neurons} neurons in the metadata, but the files "
                f"hold {n_rows} rows ({', '.join(p.name for p in parts)})"
            )
    else:
        first_layer, last_layer = parts[0].first_key[0], parts[-1].last_key[0]
        layers = list(range(first_layer, last_layer + 1))
        if not layers or n_rows % len(layers):
            raise DatasetLayoutError(
                f"cannot infer neurons per layer: {n_rows} rows over layers "
                f"{first_layer}-{last_layer} ({', '.join(p.name for p in parts)})"
            )
        n_neurons = n_rows // len(layers)
    layer_position = {layer: i for i, layer in enumerate(layers)}

    def global_row(key: tuple[int, int]) -> int | None:
        position = layer_position.get(key[0])
        if position is None or not 0 <= key[1] < n_neurons:
            return None
        return position * n_neurons + key[1]

    start, starts = 0, []
    for part in parts:
        end = start + part.num_rows - 1
        if global_row(part.first_key) != start or global_row(part.last_key) != end:
            raise DatasetLayoutError(
                f"{part.name}: starts at layer {part.first_key[0]} neuron {part.first_key[1]} "
                f"and ends at layer {part.last_key[0]} neuron {part.last_key[1]}, but with "
                f"layers {format_ranges(layers)} x {n_neurons} neurons sorted by (layer, "
                f"neuron) its {part.num_rows} rows should be rows {start}-{end}"
            )
        part.index, part.start = len(starts), start
        starts.append(start)
        start = end + 1
    return DatasetLayout(
        parts=parts,
        part_starts=[*starts, n_rows],
        layers=layers,
        layer_position=layer_position,
        n_neurons=n_neurons,
        columns=list(columns),
        metadata=metas[0] if metas else None,
    )


def top_k_of(part: ParquetPart) -> int | None:
    """Length of the max lists: the metadata's top_k, else the longest list in the first row
    group's first max column (one column chunk read; footers do not say it)."""
    meta = part.file_metadata or {}
    if isinstance(meta.get("top_k"), int):
        return meta["top_k"]
    name = next((n for n in part.schema.names if n.endswith("_max_values")), None)
    if name is None:
        return None
    lengths = part.read_group(0, [name]).column(name).combine_chunks().value_lengths()
    return int(pc.max(lengths).as_py() or 0)
