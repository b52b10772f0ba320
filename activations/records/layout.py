"""Where a neuron's row is, in a dataset of one or more Parquet files.

Rows sorted by (layer, neuron), every layer with the same number of neurons (as the published
OLMo-7B-0424 dataset and the files this project writes are): the place is computed, and the
footers' statistics are checked against that layout first. Rows in any other order: a compact
index of every (layer, neuron), built once from the two key columns and kept under
$NEURONS_HOME/indexes, named by the files' sizes and versions.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activations.io.errors import (
    CorruptDatasetError,
    DatasetLayoutError,
    NeuronOutOfRangeError,
)
from activations.io.parquet_parts import ParquetPart, format_ranges
from activations.pools import side_by_side
from activations.records.schema import KEY_COLUMNS
from registry.locations import neurons_home

_SHIFT = 32  # a key is layer << 32 | neuron


@dataclass
class KeyIndex:
    """Every (layer, neuron) and its global row, sorted by key."""

    keys: np.ndarray
    rows: np.ndarray

    def row(self, layer: int, neuron: int) -> int | None:
        key = (layer << _SHIFT) | neuron
        at = int(np.searchsorted(self.keys, key))
        return int(self.rows[at]) if at < len(self.keys) and self.keys[at] == key else None

    @classmethod
    def build(cls, parts: list[ParquetPart]) -> KeyIndex:
        """From the key columns of every row group (read side by side, per file)."""

        def file_keys(part: ParquetPart) -> np.ndarray:
            chunks = []
            for group in range(len(part.group_starts) - 1):
                layers, neurons = part.keys(group)
                chunks.append((layers.astype(np.int64) << _SHIFT) | neurons.astype(np.int64))
            return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)

        outcomes = side_by_side([lambda p=p: file_keys(p) for p in parts])
        for _, error in outcomes:
            if error is not None:
                raise error
        keys = np.concatenate([value for value, _ in outcomes])
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        duplicated = np.flatnonzero(keys[1:] == keys[:-1])
        if len(duplicated):
            key = int(keys[duplicated[0]])
            raise DatasetLayoutError(
                f"layer {key >> _SHIFT} neuron {key & 0xFFFFFFFF} has more than one row"
            )
        return cls(keys=keys, rows=order.astype(np.int64))

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in np.unique(self.keys >> _SHIFT)]

    @property
    def n_neurons(self) -> int:
        return int((self.keys & 0xFFFFFFFF).max()) + 1 if len(self.keys) else 0


def _index_path(parts: list[ParquetPart]) -> Path:
    identity = json.dumps([list(p.file.identity) for p in parts], default=str)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return neurons_home() / "indexes" / f"{digest}.npz"


def cached_index(parts: list[ParquetPart]) -> KeyIndex:
    """The key index of these files: from disk when built before, else built and kept."""
    path = _index_path(parts)
    if path.exists():
        try:
            with np.load(path) as saved:
                return KeyIndex(keys=saved["keys"], rows=saved["rows"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    index = KeyIndex.build(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=index.keys, rows=index.rows)
    tmp.replace(path)
    return index


@dataclass
class DatasetLayout:
    parts: list[ParquetPart]
    part_starts: list[int]  # global row of each part's first row, then the total
    layers: list[int]
    n_neurons: int
    columns: list[str]
    metadata: dict[str, Any] | None
    index: KeyIndex | None = None
    """Set where rows are not sorted and dense: every key's row."""
    layer_position: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.layer_position = {layer: i for i, layer in enumerate(self.layers)}

    @property
    def n_rows(self) -> int:
        return self.part_starts[-1]

    def row(self, layer: int, neuron: int) -> int:
        """The global row of a neuron; NeuronOutOfRangeError saying what exists otherwise."""
        position = self.layer_position.get(layer)
        if position is None:
            raise NeuronOutOfRangeError(
                f"layer {layer} is out of range: valid layers are "
                f"{format_ranges(self.layers)}; neurons 0-{self.n_neurons - 1}"
            )
        if not 0 <= neuron < self.n_neurons:
            raise NeuronOutOfRangeError(
                f"neuron {neuron} is out of range: valid neurons are 0-{self.n_neurons - 1}; "
                f"layers {format_ranges(self.layers)}"
            )
        if self.index is None:
            return position * self.n_neurons + neuron
        found = self.index.row(layer, neuron)
        if found is None:
            raise NeuronOutOfRangeError(f"layer {layer} neuron {neuron} is not in the dataset")
        return found

    def locate(self, row: int) -> tuple[ParquetPart, int, int, int]:
        """(part, row group, row in the group, row in the part) of a global row."""
        part = self.parts[bisect.bisect_right(self.part_starts, row) - 1]
        local = row - part.start
        group = bisect.bisect_right(part.group_starts, local) - 1
        return part, group, local - part.group_starts[group], local

    def use_index(self) -> None:
        self.index = cached_index(self.parts)
        self.layers, self.n_neurons = self.index.layers, self.index.n_neurons
        self.layer_position = {layer: i for i, layer in enumerate(self.layers)}


def assemble(parts: list[ParquetPart]) -> DatasetLayout:
    """Order the files, find the layers and neurons per layer (from our metadata, else from the
    statistics and the row count), and check every row group's statistics against the sorted,
    dense layout; where they disagree, or say nothing, the rows are indexed instead."""
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

    def first(part: ParquetPart) -> tuple:
        stats = part.key_stats[0]
        return (stats.layer[0], stats.neuron[0]) if stats else (2**62, 0)

    parts.sort(key=lambda p: (first(p), p.name))
    start = 0
    for i, part in enumerate(parts):
        part.index, part.start = i, start
        start += part.num_rows
    n_rows = start
    metas = [p.file_metadata for p in parts if p.file_metadata is not None]
    metadata = metas[0] if metas else None
    layers, n_neurons = _shape(parts, metas, n_rows)
    layout = DatasetLayout(
        parts=parts,
        part_starts=[p.start for p in parts] + [n_rows],
        layers=layers,
        n_neurons=n_neurons,
        columns=list(columns),
        metadata=metadata,
    )
    if not n_neurons or not _stats_agree(layout):
        layout.use_index()
    return layout


def _shape(parts: list[ParquetPart], metas: list[dict], n_rows: int) -> tuple[list[int], int]:
    if metas and all("layers" in m and "n_neurons" in m for m in metas):
        layers = sorted({int(layer) for m in metas for layer in m["layers"]})
        n_neurons = {int(m["n_neurons"]) for m in metas}
        if len(n_neurons) != 1:
            raise DatasetLayoutError(
                f"the files' metadata disagree on n_neurons: {sorted(n_neurons)}"
            )
        return layers, n_neurons.pop()
    stats = [s for p in parts for s in p.key_stats]
    if not stats or any(s is None for s in stats):
        return [], 0
    low, high = min(s.layer[0] for s in stats), max(s.layer[1] for s in stats)
    layers = list(range(low, high + 1))
    if n_rows % len(layers):
        return layers, 0
    return layers, n_rows // len(layers)


def _stats_agree(layout: DatasetLayout) -> bool:
    """Whether every row group's key statistics are those of the sorted, dense layout."""
    n, layers = layout.n_neurons, layout.layers
    if n_rows_expected := len(layers) * n:
        if n_rows_expected != layout.n_rows:
            return False
    for part in layout.parts:
        for group, stats in enumerate(part.key_stats):
            if stats is None:
                return False
            first = part.start + part.group_starts[group]
            last = part.start + part.group_starts[group + 1] - 1
            expected_layers = (layers[first // n], layers[last // n])
            if stats.layer != expected_layers:
                return False
            if first // n == last // n:
                if stats.neuron != (first % n, last % n):
                    return False
            elif stats.neuron != (0, n - 1):
                return False
    return True
