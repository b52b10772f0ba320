"""Random access to GLU quadrant records in Parquet: one neuron costs one row group read.

A dataset is a .parquet file, a folder of them (or its `data/`), an hf:// dataset repo or an
http(s):// URL of one file. The layout comes from the footers alone (parquet_parts.py), so opening
a remote dataset costs a footer read per file, and a record one ranged read of a row group;
footers and handles are kept open. Everything is blocking and thread-safe: the server calls it
from worker threads.
"""

from __future__ import annotations

import bisect
import operator
import os
import threading
from collections.abc import Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from activations.pools import side_by_side
from activations.records.errors import DatasetLayoutError, NeuronOutOfRangeError
from activations.records.lru import LruCache
from activations.records.parquet_parts import (
    DatasetLayout,
    Opener,
    ParquetPart,
    assemble,
    format_ranges,
    top_k_of,
)
from activations.records.schema import KEY_COLUMNS
from registry.paths import local_path, path_scheme

DEFAULT_CACHED_ROW_GROUPS = 64


class GluParquetDataset:
    """GLU quadrant records of one dataset: a .parquet file, a folder of them (or its `data/`),
    an hf:// dataset repo (its `data/*.parquet`), or an http(s):// URL of one file.

    Opening is lazy (first use) and reads footers only; `read_record` reads one row group,
    kept in a small LRU cache so neighbouring neurons cost nothing.
    """

    def __init__(
        self,
        path: str,
        cached_row_groups: int = DEFAULT_CACHED_ROW_GROUPS,
        timeout_s: float = 10.0,
    ) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s
        """Each remote request's connect and read timeout."""
        self._cache = LruCache(cached_row_groups)
        self._local_files: list[str] = []
        self._stamp: tuple | None = None
        self._layout: DatasetLayout | None = None
        self._open_lock = threading.Lock()
        self._inflight: dict[tuple, threading.Lock] = {}
        self._inflight_lock = threading.Lock()
        self._top_k_value: tuple[int | None] | None = None

    # -- opening ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._layout is not None

    def refresh(self) -> tuple | None:
        """For a local dataset, its files' (inode, size, modification time) now; where they
        changed since it was opened (a file replaced or rewritten under a running server), the
        dataset closes, to reopen on next use. None for remote datasets."""
        if local_path(self.path) is None:
            return None
        stamp = _stamp(self._local_files or [local_path(self.path)])
        if self._layout is not None and stamp != self._stamp:
            self.close()
        return stamp

    def open(self) -> GluParquetDataset:
        """Read every footer and check the layout; idempotent, and done on first use anyway."""
        self._get_layout()
        return self

    def _get_layout(self) -> DatasetLayout:
        layout = self._layout
        if layout is not None:
            return layout
        with self._open_lock:
            if self._layout is None:
                self._layout = self._load_layout()
            return self._layout

    def _openers(self) -> list[tuple[str, Opener, bool]]:
        """The dataset's files, each with a function that opens a reader of it and whether it
        is remote (read by whole row groups)."""
        local = local_path(self.path)
        if local is not None:
            fs: fsspec.AbstractFileSystem = fsspec.filesystem("file")
            root = local
        else:
            fs, root = fsspec.core.url_to_fs(self.path, **self._storage_options())
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

        def local_opener(file: str) -> Opener:
            def open_reader(footer: pq.FileMetaData | None) -> tuple[pq.ParquetFile, Any]:
                pf = pq.ParquetFile(
                    file, metadata=footer, pre_buffer=False, page_checksum_verification=True
                )
                return pf, None

            return open_reader

        def remote_opener(file: str) -> Opener:
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
            self._local_files = list(files)
            return [(f, local_opener(f), False) for f in files]
        return [(fs.unstrip_protocol(f), remote_opener(f), True) for f in files]

    def _storage_options(self) -> dict[str, Any]:
        """Per-request timeouts of the file system that reads the path, where it takes them."""
        if path_scheme(self.path) in ("http", "https"):
            import aiohttp

            t = self.timeout_s
            return {
                "client_kwargs": {"timeout": aiohttp.ClientTimeout(sock_connect=t, sock_read=t)}
            }
        return {}

    def _load_layout(self) -> DatasetLayout:
        openers = self._openers()
        # Remote footers are a round trip each: fetch them side by side.
        outcomes = side_by_side([lambda o=o: ParquetPart(*o) for o in openers])
        parts = [value for value, error in outcomes if error is None]
        try:
            for _, error in outcomes:
                if error is not None:
                    raise error
            layout = assemble(parts)
        except BaseException:
            for part in parts:
                part.close()
            raise
        self._stamp = _stamp(self._local_files) if self._local_files else None
        return layout

    def close(self) -> None:
        """Close every file handle; the dataset reopens on next use. Never waits for an open
        under way (a hung remote footer read holds the open lock): that open finishes alone."""
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

    def _top_k(self, layout: DatasetLayout) -> int | None:
        if self._top_k_value is None:
            self._top_k_value = (top_k_of(layout.parts[0]),)
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
                f"{format_ranges(layout.layers)}; neurons 0-{layout.n_neurons - 1}"
            )
        if not 0 <= neuron < layout.n_neurons:
            raise NeuronOutOfRangeError(
                f"neuron {neuron} is out of range: valid neurons are 0-{layout.n_neurons - 1}; "
                f"layers {format_ranges(layout.layers)}"
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
    def _wanted_columns(
        layout: DatasetLayout, columns: Sequence[str] | None
    ) -> tuple[str, ...] | None:
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
        self, layout: DatasetLayout, part: ParquetPart, group: int, wanted: tuple[str, ...] | None
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


def _stamp(files: list[str]) -> tuple:
    """(inode, size, modification time) of each file; a missing file stamps as None."""
    stamps = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            stamps.append(None)
            continue
        stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)
