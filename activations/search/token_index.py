"""The token index of a dataset: for every stored top example (hook, quadrant, layer, neuron,
value), the token id at its max's position in its document, sorted by (hook, token, layer,
neuron) into one Arrow IPC file beside the records (`<records>.tokens.arrow`).

A query is two binary searches in the memory-mapped token column and one pass over the slice
(the neurons are contiguous in it), so its cost follows the token's examples, not the index's
size; opening maps the file and reads nothing. Collation writes the index with its records; a
file of ours made before that gets it on its first token search. The index names the records it
was made from (each file's name, size and modification time): a replaced file is indexed anew.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from activations.records.schema import (
    KEY_COLUMNS,
    layout_of_columns,
    max_indices_column,
    max_positions_column,
    max_values_column,
)
from activations.search.answers import SearchError
from registry.locations import neurons_home

INDEX_SUFFIX = ".tokens.arrow"
INDEX_VERSION = 1
METADATA_KEY = b"token_index"
SCHEMA = pa.schema([
    ("hook", pa.int8()), ("token", pa.int32()), ("layer", pa.int16()), ("neuron", pa.int32()),
    ("quadrant", pa.int8()), ("value", pa.float32()),
])  # fmt: skip

# Token ids of documents by index, or why a document could not be had.
DocumentIds = Callable[[list[int]], dict[int, "list[int] | str"]]


def records_stamp(files: list[str]) -> list[list]:
    """What the index was made from: each records file's name, size and modification time."""
    stamp = []
    for file in files:
        st = os.stat(file)
        stamp.append([os.path.basename(file), st.st_size, st.st_mtime_ns])
    return stamp


def index_paths(dataset_path: str) -> list[Path]:
    """Where a local dataset's index is: beside it, else (a read-only folder) under
    $NEURONS_HOME/token_index."""
    absolute = os.path.abspath(dataset_path).rstrip(os.sep)
    key = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    home = neurons_home() / "token_index" / f"{Path(absolute).name}-{key}{INDEX_SUFFIX}"
    return [Path(absolute + INDEX_SUFFIX), home]


def has_positions(columns: list[str], hook: str | None = None) -> bool:
    """Whether the files store the positions of the examples' maxima (of one hook)."""
    pairs = layout_of_columns(columns).max_pairs()
    return any(max_positions_column(q, h) in columns for q, h in pairs if hook in (None, h))


def no_positions(name: str) -> SearchError:
    return SearchError(
        f"{name}'s files store no positions of their examples' maxima (the published files do "
        "not; ours do): token search needs them, and finding them means running the model over "
        "every example's document"
    )


def build_token_index(files: list[str], document_ids: DocumentIds) -> pa.Table:
    """The index of GLU Parquet records files (ours: they store each max's position); raises
    SearchError where they store no positions."""
    names = pq.read_schema(files[0]).names
    layout = layout_of_columns(names)
    pairs = [(q, h) for q, h in layout.max_pairs() if max_positions_column(q, h) in names]
    if not pairs:
        raise no_positions(os.path.basename(files[0]))
    hooks = sorted({h for _, h in pairs}, key=layout.hooks.index)
    parts: list[dict[str, np.ndarray]] = []
    for file in files:
        parts.extend(_examples(file, pairs, hooks, layout.quadrants))
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    token, placed = _tokens_at(columns.pop("document"), columns.pop("position"), document_ids)
    columns = {k: v[placed] for k, v in columns.items()}
    columns["token"] = token[placed]
    order = np.lexsort((columns["neuron"], columns["layer"], columns["token"], columns["hook"]))
    table = pa.table({f.name: pa.array(columns[f.name][order], f.type) for f in SCHEMA}, SCHEMA)
    sorted_hooks = columns["hook"][order]
    edges = np.searchsorted(sorted_hooks, np.arange(len(hooks) + 1))  # sections, in hook order
    sections = {hook: [int(edges[i]), int(edges[i + 1])] for i, hook in enumerate(hooks)}
    metadata = {
        "version": INDEX_VERSION, "hooks": sections, "quadrants": list(layout.quadrants),
        "unplaced": int((~placed).sum()), "records": records_stamp(files),
    }  # fmt: skip
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})


def _examples(file: str, pairs, hooks: list[str], quadrants) -> list[dict[str, np.ndarray]]:
    wanted = list(KEY_COLUMNS)
    for q, h in pairs:
        wanted += [max_values_column(q, h), max_indices_column(q, h), max_positions_column(q, h)]
    table = pq.read_table(file, columns=wanted)
    layer = table["layer"].to_numpy()
    neuron = table["neuron"].to_numpy()
    found = []
    for q, h in pairs:
        values = table[max_values_column(q, h)].combine_chunks()
        rows = pa.compute.list_parent_indices(values).to_numpy()
        value = values.flatten().to_numpy(zero_copy_only=False)
        document = table[max_indices_column(q, h)].combine_chunks().flatten().to_numpy()
        position = table[max_positions_column(q, h)].combine_chunks().flatten().to_numpy()
        kept = (value != 0) & (document >= 0) & (position >= 0)  # empty slots are no examples
        n = int(kept.sum())
        found.append({
            "hook": np.full(n, hooks.index(h), np.int8),
            "quadrant": np.full(n, quadrants.index(q), np.int8),
            "layer": layer[rows[kept]].astype(np.int16),
            "neuron": neuron[rows[kept]].astype(np.int32),
            "value": value[kept].astype(np.float32),
            "document": document[kept],
            "position": position[kept],
        })  # fmt: skip
    return found


def _tokens_at(
    document: np.ndarray, position: np.ndarray, document_ids: DocumentIds
) -> tuple[np.ndarray, np.ndarray]:
    """The token id at each (document, position), and where one was found (the document could
    be had and is that long)."""
    wanted = np.unique(document)
    fetched = document_ids(wanted.tolist())
    ids = [fetched.get(d) for d in wanted.tolist()]
    ids = [i if isinstance(i, list) else [] for i in ids]
    lengths = np.array([len(i) for i in ids], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(lengths.sum()))
    slot = np.searchsorted(wanted, document)
    placed = position < lengths[slot]
    token = np.full(len(document), -1, dtype=np.int64)
    token[placed] = flat[starts[slot[placed]] + position[placed]]
    return token.astype(np.int32), placed


def write_token_index(table: pa.Table, dataset_path: str) -> Path | None:
    """Write it beside the records, else under $NEURONS_HOME; None where neither can be."""
    for path in index_paths(dataset_path):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table, max_chunksize=max(table.num_rows, 1))
            os.replace(tmp, path)
            return path
        except OSError:
            tmp.unlink(missing_ok=True)
    return None


@dataclass(frozen=True)
class TokenGroup:
    layer: int
    neuron: int
    count: int
    max_value: float
    quadrants: dict[str, int]


class TokenIndex:
    """An index held in memory or mapped from its file; queries are read-only, any thread."""

    def __init__(self, table: pa.Table) -> None:
        self.metadata: dict[str, Any] = json.loads(table.schema.metadata[METADATA_KEY])
        self.columns = {name: _numpy(table[name]) for name in SCHEMA.names}
        self.quadrants: list[str] = self.metadata["quadrants"]

    @classmethod
    def open(cls, path: Path) -> TokenIndex:
        return cls(pa.ipc.open_file(pa.memory_map(str(path))).read_all())

    @property
    def hooks(self) -> list[str]:
        return list(self.metadata["hooks"])

    def made_from(self, files: list[str]) -> bool:
        return self.metadata.get("version") == INDEX_VERSION and self.metadata.get(
            "records"
        ) == records_stamp(files)

    def size(self, hook: str) -> int:
        start, stop = self.metadata["hooks"].get(hook, (0, 0))
        return stop - start

    def query(self, hook: str, token_id: int, top: int) -> tuple[list[TokenGroup], int]:
        """The `top` neurons with the most examples of `hook` peaking on the token (then by
        largest |value|, then by layer and neuron), and how many such examples there are."""
        start, stop = self.metadata["hooks"].get(hook, (0, 0))
        tokens = self.columns["token"][start:stop]
        if not np.iinfo(tokens.dtype).min <= token_id <= np.iinfo(tokens.dtype).max:
            return [], 0
        key = tokens.dtype.type(token_id)  # of the column's type: else numpy casts the column
        lo = start + int(np.searchsorted(tokens, key, "left"))
        hi = start + int(np.searchsorted(tokens, key, "right"))
        if lo == hi:
            return [], 0
        layer, neuron = self.columns["layer"][lo:hi], self.columns["neuron"][lo:hi]
        value, quadrant = self.columns["value"][lo:hi], self.columns["quadrant"][lo:hi]
        unit = layer.astype(np.int64) << 32 | neuron
        firsts = np.flatnonzero(np.concatenate([[True], unit[1:] != unit[:-1]]))
        counts = np.diff(np.concatenate([firsts, [len(unit)]]))
        strongest = np.maximum.reduceat(np.abs(value), firsts)
        chosen = np.lexsort((-strongest, -counts))[:top]  # stable: ties stay by layer, neuron
        groups = []
        for g in chosen.tolist():
            a, b = int(firsts[g]), int(firsts[g] + counts[g])
            at = a + int(np.argmax(np.abs(value[a:b])))
            by_quadrant = np.bincount(quadrant[a:b], minlength=len(self.quadrants))
            groups.append(
                TokenGroup(
                    layer=int(layer[a]),
                    neuron=int(neuron[a]),
                    count=int(counts[g]),
                    max_value=float(value[at]),
                    quadrants={
                        q: int(c) for q, c in zip(self.quadrants, by_quadrant, strict=True) if c
                    },
                )
            )
        return groups, hi - lo


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy()  # zero copy: a view of the mapped file
    return column.to_numpy()
