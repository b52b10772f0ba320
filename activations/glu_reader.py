"""Random access to GLU quadrant records in Parquet: one neuron costs one row group read.

Reads the published OLMo-7B-0424 dataset (no file metadata) and the files this project writes
(with `neurons` metadata) alike: rows sorted by (layer, neuron), every layer with the same number
of neurons. The layout comes from the footers alone, so opening a remote dataset costs a footer
read per file, and a record one ranged read of a row group; footers and handles are kept open.
Everything is blocking and thread-safe: the server calls it from worker threads.
"""

from __future__ import annotations

import bisect
import json
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activations.lru import LruCache
from activations.schema import KEY_COLUMNS, METADATA_KEY
from registry.paths import local_path, path_scheme

DEFAULT_CACHED_ROW_GROUPS = 64
# A remote row group up to this size is fetched whole, in one request, rather than by columns.
WHOLE_GROUP_BYTES = 8 * 2**20
# Per-file readers kept idle for reuse; more are opened (sharing the parsed footer) under load.
MAX_IDLE_READERS = 4


class NeuronOutOfRangeError(LookupError):
    """The asked layer or neuron is not in the dataset; the message says the valid ranges."""


class CorruptDatasetError(ValueError):
    """A file is not readable Parquet (corrupted, truncated) or not laid out as expected."""


class DatasetLayoutError(CorruptDatasetError):
    """A file reads fine but its rows are not sorted by (layer, neuron) with N per layer."""


def _is_corruption(exc: BaseException) -> bool:
    """Arrow's own errors mean a bad file; OSError subclasses (connection, timeout, missing
    file) come from the file system and mean the file could not be reached."""
    return isinstance(exc, pa.ArrowException) or type(exc) is OSError


def _format_ranges(values: Sequence[int]) -> str:
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
_Opener = Callable[["pq.FileMetaData | None"], "tuple[pq.ParquetFile, Any]"]


class _ParquetPart:
    """One file: its footer parsed once, its first and last (layer, neuron), and a pool of open
    readers sharing that footer, so concurrent reads of one file neither block nor re-read it."""

    def __init__(self, name: str, opener: _Opener, whole_groups: bool = False) -> None:
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
            if _is_corruption(exc):
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
            if _is_corruption(exc):
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
class _Layout:
    parts: list[_ParquetPart]
    part_starts: list[int]  # global row of each part's first row, then the total
    layers: list[int]
    layer_position: dict[int, int]
    n_neurons: int
    columns: list[str]
    metadata: dict[str, Any] | None

    @property
    def n_rows(self) -> int:
        return self.part_starts[-1]


class GluParquetDataset:
    """GLU quadrant records of one dataset: a .parquet file, a folder of them (or its `data/`),
    an hf:// dataset repo (its `data/*.parquet`), or an http(s):// URL of one file.

    Opening is lazy (first use) and reads footers only; `read_record` reads one row group,
    kept in a small LRU cache so neighbouring neurons cost nothing.
    """

    def __init__(self, path: str, cached_row_groups: int = DEFAULT_CACHED_ROW_GROUPS) -> None:
        self.path = str(path)
        self._cache = LruCache(cached_row_groups)
        self._layout: _Layout | None = None
        self._open_lock = threading.Lock()
        self._inflight: dict[tuple, threading.Lock] = {}
        self._inflight_lock = threading.Lock()
        self._top_k_value: tuple[int | None] | None = None

    # -- opening ------------------------------------------------------------------------------

    def open(self) -> GluParquetDataset:
        """Read every footer and check the layout; idempotent, and done on first use anyway."""
        self._get_layout()
        return self

    def _get_layout(self) -> _Layout:
        layout = self._layout
        if layout is not None:
            return layout
        with self._open_lock:
            if self._layout is None:
                self._layout = self._load_layout()
            return self._layout

    def _openers(self) -> list[tuple[str, _Opener, bool]]:
        """The dataset's files, each with a function that opens a reader of it and whether it
        is remote (read by whole row groups)."""
        local = local_path(self.path)
        if local is not None:
            fs: fsspec.AbstractFileSystem = fsspec.filesystem("file")
            root = local
        else:
            fs, root = fsspec.core.url_to_fs(self.path)
        if path_scheme(self.path) in ("http", "https") or root.endswith(".parquet"):
            files = [root]
        elif fs.isdir(root):
            base = root.rstrip("/")
            files = sorted(fs.glob(f"{base}/*.parquet")) or sorted(
                fs.glob(f"{base}/data/*.parquet")
            )
            if not files:
                raise FileNotFoundError(
                    f"no parquet files in {self.path} (looked for *.parquet and data/*.parquet)"
                )
        elif fs.exists(root):
            files = [root]
        else:
            raise FileNotFoundError(f"no such dataset file or folder: {self.path}")

        def local_opener(file: str) -> _Opener:
            def open_reader(footer: pq.FileMetaData | None) -> tuple[pq.ParquetFile, Any]:
                pf = pq.ParquetFile(
                    file, metadata=footer, pre_buffer=False, page_checksum_verification=True
                )
                return pf, None

            return open_reader

        def remote_opener(file: str) -> _Opener:
            def open_reader(footer: pq.FileMetaData | None) -> tuple[pq.ParquetFile, Any]:
                # No fsspec read-ahead: pyarrow's pre-buffering already coalesces the column
                # chunks of a row group into one ranged request of just the bytes it needs.
                handle = fs.open(file, "rb", cache_type="none")
                try:
                    pf = pq.ParquetFile(
                        handle, metadata=footer, pre_buffer=True, page_checksum_verification=True
                    )
                except BaseException:
                    handle.close()
                    raise
                return pf, handle

            return open_reader

        if local is not None:
            return [(f, local_opener(f), False) for f in files]
        return [(fs.unstrip_protocol(f), remote_opener(f), True) for f in files]

    def _load_layout(self) -> _Layout:
        openers = self._openers()
        # Remote footers are a round trip each: fetch them side by side.
        with ThreadPoolExecutor(max_workers=min(8, len(openers))) as pool:
            futures = [pool.submit(_ParquetPart, *o) for o in openers]
        parts = [f.result() for f in futures if f.exception() is None]
        try:
            for f in futures:
                if f.exception() is not None:
                    raise f.exception()
            return _assemble(parts)
        except BaseException:
            for part in parts:
                part.close()
            raise

    def close(self) -> None:
        """Close every file handle; the dataset reopens on next use."""
        with self._open_lock:
            layout, self._layout = self._layout, None
        self._cache.clear()
        self._top_k_value = None
        if layout is not None:
            for part in layout.parts:
                part.close()

    def __enter__(self) -> GluParquetDataset:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- layout -------------------------------------------------------------------------------

    @property
    def layers(self) -> list[int]:
        return list(self._get_layout().layers)

    @property
    def n_neurons(self) -> int:
        return self._get_layout().n_neurons

    @property
    def columns(self) -> list[str]:
        return list(self._get_layout().columns)

    def describe(self) -> dict[str, Any]:
        """What the dataset holds, from its footers: no data is read."""
        layout = self._get_layout()
        return {
            "path": self.path,
            "layers": list(layout.layers),
            "n_neurons": layout.n_neurons,
            "n_rows": layout.n_rows,
            "n_files": len(layout.parts),
            "top_k": self._top_k(layout),
            "metadata": layout.metadata,
            "columns": list(layout.columns),
        }

    def _top_k(self, layout: _Layout) -> int | None:
        if self._top_k_value is None:
            self._top_k_value = (_top_k(layout.parts[0]),)
        return self._top_k_value[0]

    # -- records ------------------------------------------------------------------------------

    def read_record(
        self, layer: int, neuron: int, columns: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """One neuron's record as Python values (lists, floats with NaN for empty means).

        With `columns`, only those are read (plus layer and neuron, always returned)."""
        layout = self._get_layout()
        layer, neuron = operator.index(layer), operator.index(neuron)
        position = layout.layer_position.get(layer)
        if position is None:
            raise NeuronOutOfRangeError(
                f"layer {layer} is out of range: valid layers are "
                f"{_format_ranges(layout.layers)}; neurons 0-{layout.n_neurons - 1}"
            )
        if not 0 <= neuron < layout.n_neurons:
            raise NeuronOutOfRangeError(
                f"neuron {neuron} is out of range: valid neurons are 0-{layout.n_neurons - 1}; "
                f"layers {_format_ranges(layout.layers)}"
            )
        wanted = self._wanted_columns(layout, columns)
        row = position * layout.n_neurons + neuron
        part = layout.parts[bisect.bisect_right(layout.part_starts, row) - 1]
        local_row = row - part.start
        group = bisect.bisect_right(part.group_starts, local_row) - 1
        table = self._row_group(layout, part, group, wanted)
        record = table.slice(local_row - part.group_starts[group], 1).to_pylist()[0]
        if (record["layer"], record["neuron"]) != (layer, neuron):
            raise DatasetLayoutError(
                f"{part.name}: row {local_row} (row group {group}) holds layer "
                f"{record['layer']} neuron {record['neuron']}, expected layer {layer} neuron "
                f"{neuron}; the file is not sorted by (layer, neuron) with "
                f"{layout.n_neurons} neurons per layer"
            )
        if wanted is not None:
            record = {name: record[name] for name in wanted}
        return record

    @staticmethod
    def _wanted_columns(layout: _Layout, columns: Sequence[str] | None) -> tuple[str, ...] | None:
        if columns is None:
            return None
        if isinstance(columns, str):
            columns = [columns]
        unknown = [c for c in columns if c not in layout.columns]
        if unknown:
            raise ValueError(
                f"unknown column(s) {unknown}; this dataset's columns are: "
                + ", ".join(layout.columns)
            )
        return tuple(dict.fromkeys([*KEY_COLUMNS, *columns]))

    def _row_group(
        self, layout: _Layout, part: _ParquetPart, group: int, wanted: tuple[str, ...] | None
    ) -> pa.Table:
        """A decoded row group from the cache (all columns, or exactly these), else read once
        even when several threads ask for it together."""
        if part.reads_whole(group):
            wanted = None
        full_key = (part.index, group, None)
        key = (part.index, group, None if wanted is None else tuple(sorted(wanted)))
        cached = self._cache.get(full_key)
        if cached is None and wanted is not None:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        with self._inflight_lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        try:
            with lock:
                cached = self._cache.get(full_key)
                if cached is None:
                    cached = self._cache.get(key)
                if cached is not None:
                    return cached
                table = part.read_group(group, None if wanted is None else list(wanted))
                self._cache.put(key, table)
                return table
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)


def _assemble(parts: list[_ParquetPart]) -> _Layout:
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
                f"layers {_format_ranges(layers)} x {n_neurons} neurons sorted by (layer, "
                f"neuron) its {part.num_rows} rows should be rows {start}-{end}"
            )
        part.index, part.start = len(starts), start
        starts.append(start)
        start = end + 1
    return _Layout(
        parts=parts,
        part_starts=[*starts, n_rows],
        layers=layers,
        layer_position=layer_position,
        n_neurons=n_neurons,
        columns=list(columns),
        metadata=metas[0] if metas else None,
    )


def _top_k(part: _ParquetPart) -> int | None:
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
