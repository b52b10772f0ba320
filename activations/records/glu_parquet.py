"""Random access to GLU quadrant records in Parquet: one neuron costs one row group read.

A dataset is a .parquet file, a folder of them (or its `data/`), an hf:// dataset repo or an
http(s):// URL of one file. The layout comes from the footers alone (parquet_parts.py), so opening
a remote dataset costs a footer read per file, and a record one ranged read of a row group;
footers and handles are kept open. Everything is blocking and thread-safe: the server calls it
from worker threads.
"""

from __future__ import annotations

import operator
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from activations.io.byte_cache import ByteCache
from activations.io.dataset_files import dataset_files
from activations.io.errors import CorruptDatasetError, DatasetLayoutError, RecordError
from activations.io.lru import LruCache, SharedPart
from activations.io.parquet_parts import ParquetPart
from activations.pools import side_by_side
from activations.records import read_ahead
from activations.records.layout import DatasetLayout, assemble
from activations.records.row_view import RowView
from activations.records.schema import KEY_COLUMNS
from registry.paths import local_path

# Decoded row groups are kept up to a size (bytes), not a count: a local file's 128-row group
# of one hook's record columns is about 445 KB decoded (histograms included), so a 46,080-neuron
# file's 360 groups are 160 MB, where a count of 64 kept one in six and most first reads of a
# neuron decoded its group again.
DEFAULT_CACHED_ROW_GROUPS = 8192
DEFAULT_CACHED_BYTES = 512 * 2**20


class GluParquetReader:
    """The file reader of GLU quadrant records of one dataset: a .parquet file, a folder of
    them (or its `data/`), an hf:// dataset repo (its `data/*.parquet`), or an http(s):// URL
    of one file.

    Opening is lazy (first use) and reads footers only; `read_record` reads one row group,
    kept in a small LRU cache so neighbouring neurons cost nothing.
    """

    def __init__(
        self,
        path: str,
        cached_row_groups: int = DEFAULT_CACHED_ROW_GROUPS,
        timeout_s: float = 10.0,
        revision: str | None = None,
        byte_cache: ByteCache | None = None,
        cached_bytes: int = DEFAULT_CACHED_BYTES,
        decoded: LruCache | None = None,
        read_ahead: bool = False,
    ) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s
        """Each remote request's connect and read timeout."""
        self.revision = revision
        """An hf:// dataset's pinned revision (branch, tag or commit)."""
        self.byte_cache = byte_cache or ByteCache()
        # decoded row groups: a few of the published files' 34,530-row groups are many MB;
        # `decoded`, a cache shared by every reader of a server, bounds them all together
        whole = LruCache(cached_row_groups, cached_bytes) if decoded is None else decoded
        self._cache: SharedPart = whole.share(object())
        self._local_files: list[str] = []
        self._stamp: tuple | None = None
        self._layout: DatasetLayout | None = None
        self._open_lock = threading.Lock()
        self._inflight: dict[tuple, threading.Lock] = {}
        self._inflight_lock = threading.Lock()
        # a group decoded while the dataset closed (its file replaced) is not kept: under this
        # lock, closing clears the decoded groups and a decoded group is kept only if still open
        self._keep_lock = threading.Lock()
        self._top_k_value: tuple[int | None] | None = None
        self.read_ahead = read_ahead
        """Whether a local dataset's other row groups are decoded in the background once one
        is (read_ahead.py; the server's readers do)."""
        self._ahead: set[tuple[str, ...] | None] = set()

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

    def open(self) -> GluParquetReader:
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

    def _load_layout(self) -> DatasetLayout:
        files = dataset_files(self.path, self.revision, self.timeout_s, self.byte_cache)
        # Remote footers are a round trip each: fetch them side by side.
        outcomes = side_by_side([lambda f=f: ParquetPart(f) for f in files])
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
        self._local_files = [f.name for f in files if f.remote is None]
        self._stamp = _stamp(self._local_files) if self._local_files else None
        return layout

    @property
    def local_files(self) -> list[str]:
        """Its files, where they are local (opened first; a replaced file reopens)."""
        self.refresh()
        self.open()
        return list(self._local_files)

    def close(self) -> None:
        """Close every file handle; the dataset reopens on next use. Never waits for an open
        under way (a hung remote footer read holds the open lock): that open finishes alone."""
        with self._keep_lock:
            layout, self._layout = self._layout, None
            self._cache.clear()
            self._ahead.clear()
        self.byte_cache.flush()  # what was fetched is on disk for the next process
        self._top_k_value = None
        if layout is not None:
            for part in layout.parts:
                part.close()

    def __enter__(self) -> GluParquetReader:
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

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The file metadata of its first file (key `neurons`), as written; no data is read."""
        return self._get_layout().metadata

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
            self._top_k_value = (layout.parts[0].top_k(),)
        return self._top_k_value[0]

    # -- records ------------------------------------------------------------------------------

    def read_record(
        self, layer: int, neuron: int, columns: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """One neuron's record as Python values (lists, floats with NaN for empty means).

        With `columns`, only those are read (plus layer and neuron, always returned)."""
        layout = self._get_layout()
        layer, neuron = operator.index(layer), operator.index(neuron)
        wanted = self._wanted_columns(layout, columns)
        record = self._read_row(layout, layer, neuron, wanted)
        if (record["layer"], record["neuron"]) != (layer, neuron) and layout.index is None:
            layout.use_index()  # the statistics agreed, the rows do not: index them
            record = self._read_row(layout, layer, neuron, wanted)
        if (record["layer"], record["neuron"]) != (layer, neuron):
            raise DatasetLayoutError(
                f"the row of layer {layer} neuron {neuron} holds layer {record['layer']} "
                f"neuron {record['neuron']}"
            )
        return record

    def decoded_record(
        self, layer: int, neuron: int, columns: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """read_record's answer where the neuron's row group is decoded already (no file is
        read, nothing waited for), else None: a caller on an event loop answers it there."""
        layout = self._layout
        if layout is None:
            return None
        try:
            wanted = self._wanted_columns(layout, columns)
            part, group, in_group, _ = layout.locate(layout.row(layer, neuron))
        except (LookupError, ValueError, RecordError):
            return None  # read_record says what is wrong
        group_rows = self._cache.get((part.index, group, None))
        if group_rows is None and wanted is not None:
            group_rows = self._cache.get((part.index, group, tuple(sorted(wanted))))
        if group_rows is None:
            return None
        record = group_rows.row(in_group, wanted)
        if (record["layer"], record["neuron"]) != (layer, neuron):
            return None
        return record

    def _read_row(
        self, layout: DatasetLayout, layer: int, neuron: int, wanted: tuple[str, ...] | None
    ) -> dict[str, Any]:
        part, group, in_group, _ = layout.locate(layout.row(layer, neuron))
        return self._row_group(layout, part, group, wanted).row(in_group, wanted)

    @staticmethod
    def _wanted_columns(
        layout: DatasetLayout, columns: Sequence[str] | None
    ) -> tuple[str, ...] | None:
        if columns is None:
            return None
        if isinstance(columns, str):
            columns = [columns]
        available, asked = tuple(layout.columns), tuple(columns)
        try:
            return _checked_columns(available, asked)
        except TypeError:  # a name that cannot be hashed: unknown, said as such
            return _checked_columns.__wrapped__(available, asked)

    def _row_group(
        self, layout: DatasetLayout, part: ParquetPart, group: int, wanted: tuple[str, ...] | None
    ) -> RowView:
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
                # the buffers' total (nbytes walks every list column's offsets: a tenth of a
                # cold read)
                rows = RowView(table)
                with self._keep_lock:
                    if self._layout is layout:
                        self._cache.put(key, rows, weight=table.get_total_buffer_size())
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)
        self._read_ahead(layout, part, wanted)
        return rows

    def _read_ahead(
        self, layout: DatasetLayout, part: ParquetPart, wanted: tuple[str, ...] | None
    ) -> None:
        """After a local dataset's first group decoded with these columns, its other groups
        with the same columns, in the background (read_ahead.py), once per opening."""
        if not self.read_ahead or part.file.remote is not None:
            return
        columns = None if wanted is None else tuple(sorted(wanted))
        with self._keep_lock:  # the lock under which closing forgets them
            if columns in self._ahead:
                return
            self._ahead.add(columns)
        groups = ((p, g) for p in layout.parts for g in range(p.metadata.num_row_groups))

        def decode(item: tuple[ParquetPart, int]) -> bool:
            if self._layout is not layout:
                return False  # closed (or reopened on other files): those are not ours
            try:
                self._row_group(layout, *item, wanted).prepare(wanted)
            except CorruptDatasetError:
                pass  # the request for that group says so; the others are read on
            return True

        read_ahead.start(self.path, groups, decode, self._cache.whole)


@lru_cache(maxsize=256)
def _checked_columns(available: tuple[str, ...], columns: tuple[str, ...]) -> tuple[str, ...]:
    """The key columns and these, each once, where the dataset has them all (the same few
    sets are asked again and again: kept)."""
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise ValueError(
            f"unknown column(s) {unknown}; this dataset's columns are: " + ", ".join(available)
        )
    return tuple(dict.fromkeys([*KEY_COLUMNS, *columns]))


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
