"""A model's weight views on disk: one Arrow IPC file per model under $NEURONS_HOME/weights,
memory-mapped, one row per neuron in layer order, so that a neuron's views are a few slices."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from activations.weights.compute import METADATA_KEY
from registry.locations import neurons_home
from registry.metadata import ModelMetadata

VERSION = 2  # 2: gate and in folded through the pre-MLP norm's scale, raw cosines kept


def cache_path(metadata: ModelMetadata) -> Path:
    """Keyed by what the views depend on: the model's weights and whether it is refactored."""
    key = json.dumps(
        [
            VERSION,
            metadata.hf_path_or_id,
            metadata.gguf_file,
            metadata.revision,
            metadata.refactor_glu,
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return neurons_home() / "weights" / f"{metadata.short_name}-{digest}.arrow"


def write_table(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table.combine_chunks(), max_chunksize=max(table.num_rows, 1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class WeightTable:
    """Read-only, any thread."""

    def __init__(self, table: pa.Table) -> None:
        self.metadata: dict[str, Any] = json.loads(table.schema.metadata[METADATA_KEY])
        self.columns: dict[str, np.ndarray] = {}
        for name in table.column_names:
            column = table[name].combine_chunks()
            if isinstance(column, pa.FixedSizeListArray):
                size = column.type.list_size
                self.columns[name] = column.flatten().to_numpy().reshape(-1, size)
            else:
                self.columns[name] = column.to_numpy(zero_copy_only=False)
        layers = self.columns["layer"]
        self.layers: list[int] = np.unique(layers).tolist()
        self._starts = {layer: int(np.searchsorted(layers, layer)) for layer in self.layers}
        self.neurons_per_layer = int((layers == self.layers[0]).sum()) if self.layers else 0

    @classmethod
    def open(cls, path: Path) -> WeightTable:
        return cls(pa.ipc.open_file(pa.memory_map(str(path))).read_all())

    def row(self, layer: int, neuron: int) -> int:
        if layer not in self._starts:
            raise LookupError(
                f"layer {layer} is out of range: valid layers are "
                f"{self.layers[0]}-{self.layers[-1]}"
            )
        if not 0 <= neuron < self.neurons_per_layer:
            raise LookupError(
                f"neuron {neuron} is out of range: valid neurons are 0-{self.neurons_per_layer - 1}"
            )
        return self._starts[layer] + neuron

    def neuron(self, layer: int, neuron: int) -> dict[str, Any]:
        """Its cosines, class, family, moments and token lists ({name}_ids, {name}_values)."""
        return self.at(self.row(layer, neuron))

    def at(self, row: int) -> dict[str, Any]:
        """The neuron of this row (neuron(): by layer and neuron)."""
        found: dict[str, Any] = {}
        for name, column in self.columns.items():
            found[name] = column[row].tolist()
        for name in ("io_class", "raw_io_class"):
            if name in found:
                found[name] = self.metadata["classes"][found[name]]
        found["family"] = self.metadata["families"][found["family"]] or None
        return found

    def counts(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Per class and per family, how many neurons of each layer."""
        layer = self.columns["layer"]
        by_class, by_family = {}, {}
        for column, names, out in (
            ("io_class", self.metadata["classes"], by_class),
            ("family", self.metadata["families"], by_family),
        ):
            values = self.columns[column]
            for i, name in enumerate(names):
                if name:
                    chosen = layer[values == i]
                    out[name] = [int((chosen == lay).sum()) for lay in self.layers]
        return by_class, by_family
