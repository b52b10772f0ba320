"""Accumulated totals ⇄ Parquet records in the GLU quadrant schema, written atomically.

The file holds the published dataset's columns (freq, mean, max values and indices) and ours
(max positions, exact counts and float64 sums), so partial files merge exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from activations.collate.accumulator import LayerAccumulator
from activations.collate.config import DEFAULT_ROWS_PER_GROUP
from activations.collate.output import publish, temporary_beside
from activations.collate.reduction import ABSENT_DOC, ABSENT_SCORE
from activations.records.schema import (
    KEY_COLUMNS,
    METADATA_KEY,
    RecordLayout,
    count_column,
    freq_column,
    histogram_column,
    layout_of_columns,
    max_indices_column,
    max_positions_column,
    max_values_column,
    mean_column,
    old_sum_column,
    sum_column,
)
from registry.vocabulary import ALL_TOKENS, histogram_description


def document_ranges(metadata: dict) -> list[tuple[int, int]]:
    """The [start, stop) document ranges a file covers: one pair, or a list after a merge."""
    ranges = metadata.get("documents") or []
    if ranges and isinstance(ranges[0], int):
        ranges = [ranges]
    return [(int(a), int(b)) for a, b in ranges]


def fill_empty_slots(
    docs: np.ndarray, present: np.ndarray, documents: list[tuple[int, int]]
) -> np.ndarray:
    """Top-k slots no document reached ([P, k, N]) hold, as in the published files, a real
    document index with value 0.0 (their reader turns -1 into the corpus's last row): here the
    lowest indices of the documents read (`documents`, [start, stop) ranges) not already in
    that list. Only where fewer documents were read than k do slots keep -1."""
    docs = np.where(present, docs, -1)
    if present.all():
        return docs
    filled = docs.copy()
    for p, n in zip(*np.nonzero(~present.all(axis=1)), strict=True):
        taken = set(docs[p, :, n][present[p, :, n]].tolist())
        spare = (d for a, b in sorted(documents) for d in range(a, b) if d not in taken)
        for slot in np.flatnonzero(~present[p, :, n]):
            filled[p, slot, n] = next(spare, -1)
    return filled


def _lists(matrix: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """[rows, k] → list<value_type> with k items per row."""
    rows, k = matrix.shape
    offsets = pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=value_type))


def accumulators_to_table(
    accumulators: dict[int, LayerAccumulator], n_tokens: int, metadata: dict[str, Any]
) -> pa.Table:
    """One row per neuron, sorted by (layer, neuron)."""
    documents = document_ranges(metadata)
    layers = sorted(accumulators)
    first = accumulators[layers[0]]
    layout, n = first.layout, first.n_neurons
    with_histogram = first.histogram is not None
    if any((acc.histogram is not None) != with_histogram for acc in accumulators.values()):
        raise ValueError("either every layer counts a histogram or none does")
    if with_histogram:  # the bins, for readers of the file alone
        metadata = {**metadata, "histogram": histogram_description()}
    columns: dict[str, list[pa.Array]] = {}

    def put(name: str, array: pa.Array) -> None:
        columns.setdefault(name, []).append(array)

    for layer in layers:
        acc = accumulators[layer]
        counts = acc.counts.cpu().numpy()
        sums = acc.sums.cpu().numpy()
        put("layer", pa.array(np.full(n, layer, dtype=np.int64)))
        put("neuron", pa.array(np.arange(n, dtype=np.int64)))
        for qi, q in enumerate(layout.quadrants):
            freq = counts[qi] / n_tokens if n_tokens else np.full(n, np.nan)
            put(freq_column(q), pa.array(freq.astype(np.float32)))
            put(count_column(q), pa.array(counts[qi]))
            with np.errstate(invalid="ignore", divide="ignore"):
                for hi, h in enumerate(layout.hooks):
                    mean = np.where(counts[qi] > 0, sums[qi, hi] / counts[qi], np.nan)
                    put(mean_column(q, h), pa.array(mean.astype(np.float32)))
                    put(sum_column(q, h), pa.array(sums[qi, hi]))
        present = (acc.top_doc != ABSENT_DOC).cpu().numpy()
        values = np.where(present, acc.top_value.cpu().numpy(), 0.0).astype(np.float32)
        docs = fill_empty_slots(acc.top_doc.cpu().numpy(), present, documents)
        positions = np.where(present, acc.top_position.cpu().numpy(), -1)
        for pi, (q, h) in enumerate(layout.max_pairs()):
            put(max_values_column(q, h), _lists(values[pi].T, pa.float32()))
            put(max_indices_column(q, h), _lists(docs[pi].T.astype(np.int64), pa.int64()))
            put(max_positions_column(q, h), _lists(positions[pi].T.astype(np.int64), pa.int64()))
        if with_histogram:
            counts_by_group = acc.histogram.cpu().numpy()  # [G, BINS, N]
            by_quadrant = dict(zip(layout.quadrants, counts_by_group, strict=False))
            by_quadrant[ALL_TOKENS] = counts_by_group.sum(axis=0)
            for q in layout.histogram_quadrants():
                put(histogram_column(q), _lists(by_quadrant[q].T, pa.int64()))

    schema = layout.arrow_schema(with_histogram).with_metadata({METADATA_KEY: json.dumps(metadata)})
    arrays = [pa.chunked_array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _codec(field: pa.Field) -> tuple[str, str]:
    """A column's path in the Parquet schema (a list's values are its `.list.element`) and the
    codec its chunks are written with (parquet_options says why)."""
    if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
        return f"{field.name}.list.element", "zstd"
    return field.name, "none"


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How a GLU record file is written (collation, merges and the Hub's shards alike).

    Compression per column: a row group's chunk of a one-value-per-row column is a few hundred
    bytes that zstd barely shrinks, while pyarrow's zstd costs a fixed setup for every chunk it
    decodes (a new decompression context each time); so those are stored plain and the lists
    (examples, histograms: most of the bytes) in zstd. A cold record decodes 41 chunks of its
    row group: 1.1 ms against 1.7 ms with zstd everywhere, for a file 5 % larger (the embedded
    model's dataset). Activations rarely repeat: dictionary pages only cost (a cold row-group
    read of a full-size file takes 2.3 ms without them against 3.1 ms, and the file is 25 %
    smaller), so only the key columns have them (and statistics)."""
    return {
        "compression": dict(_codec(field) for field in schema),
        "use_dictionary": list(KEY_COLUMNS),
        "write_statistics": list(KEY_COLUMNS),
        "write_page_checksum": True,
    }


def write_table_atomically(
    table: pa.Table,
    path: str | os.PathLike,
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP,
    overwrite: bool = False,
) -> None:
    """Write beside the target and publish it (output.publish), so the path never holds a
    half-written file, and without `overwrite` never replaces one."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        pq.write_table(table, tmp, row_group_size=rows_per_group, **parquet_options(table.schema))
        publish(tmp, path, overwrite)
    except FileExistsError:
        raise  # the finished file stays where the message says
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The file-level metadata this project writes ({} for files without it)."""
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw[METADATA_KEY]) if METADATA_KEY in raw else {}


def _matrix(rows: pa.Table, name: str, dtype, k: int) -> np.ndarray:
    """A list column of k items per row → [k, rows]."""
    flat = rows.column(name).combine_chunks().flatten().to_numpy()
    return flat.astype(dtype).reshape(rows.num_rows, k).T


def _histogram_groups(rows: pa.Table, layout: RecordLayout) -> np.ndarray:
    """[G, BINS, N] counts per group from a file's histogram columns: each quadrant's, then the
    tokens in none (every token's less the quadrants')."""
    bins = len(rows.column(histogram_column(ALL_TOKENS))[0])

    def read(q: str) -> np.ndarray:
        return _matrix(rows, histogram_column(q), np.int64, bins)

    groups = [read(q) for q in layout.quadrants]
    return np.stack([*groups, read(ALL_TOKENS) - np.sum(groups, axis=0)])


def table_to_accumulators(table: pa.Table, k: int) -> dict[int, LayerAccumulator]:
    """Rebuild exact running totals from a file this project wrote (extension columns needed)."""
    names = table.column_names
    layout: RecordLayout = layout_of_columns(names)
    needed = [count_column(q) for q in layout.quadrants]
    if any(c not in names for c in needed):
        raise ValueError(
            "this file has no exact counts and sums (columns like "
            f"{needed[0]!r}), so it cannot be merged exactly; only files written by "
            "`neurons collate` can"
        )
    layer_column = table.column("layer").to_numpy()
    accumulators: dict[int, LayerAccumulator] = {}
    for layer in np.unique(layer_column):
        rows = table.filter(pc.equal(table.column("layer"), layer))
        n = rows.num_rows
        with_histogram = histogram_column(ALL_TOKENS) in names
        acc = LayerAccumulator(layout=layout, n_neurons=n, k=k, with_histogram=with_histogram)
        acc.counts = torch.from_numpy(
            np.stack([rows.column(count_column(q)).to_numpy() for q in layout.quadrants])
        )
        total = (
            sum_column
            if sum_column(layout.quadrants[0], layout.hooks[0]) in names
            else (old_sum_column)
        )
        acc.sums = torch.from_numpy(
            np.stack(
                [
                    np.stack([rows.column(total(q, h)).to_numpy() for h in layout.hooks])
                    for q in layout.quadrants
                ]
            )
        )
        pairs = layout.max_pairs()
        values = np.stack([_matrix(rows, max_values_column(q, h), np.float32, k) for q, h in pairs])
        docs = np.stack([_matrix(rows, max_indices_column(q, h), np.int64, k) for q, h in pairs])
        positions = np.stack(
            [_matrix(rows, max_positions_column(q, h), np.int64, k) for q, h in pairs]
        )
        present = (positions >= 0) & (docs >= 0)  # version 1: index -1; 2: position -1
        acc.top_value = torch.from_numpy(values)
        acc.top_doc = torch.from_numpy(np.where(present, docs, ABSENT_DOC))
        acc.top_position = torch.from_numpy(positions)
        acc.top_score = torch.from_numpy(np.where(present, np.abs(values), ABSENT_SCORE)).float()
        acc.last_doc = int(docs[present].max(initial=-1))
        if with_histogram:
            acc.histogram = torch.from_numpy(_histogram_groups(rows, layout))
        accumulators[int(layer)] = acc
    return accumulators
