"""A collated file as the published dataset's shards: `data/train-XXXXX-of-YYYYY.parquet`, the
card's columns first (names, order, dtypes), ours after them, rows at `layer · d_mlp + neuron`.

A file that readers of that layout would misread is refused with the reason (some layers only,
partial, rows out of order); a file of an older schema version is converted on the way. The
shards are written once per source file under `$NEURONS_HOME/push/` and kept until pushed, so a
push that failed half-way uploads the very same bytes again (the Hub then skips the files it
already holds).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from activations.collate.writer import (
    accumulators_to_table,
    parquet_options,
    read_metadata,
    table_to_accumulators,
)
from activations.records.schema import (
    GLU_LAYOUT,
    KEY_COLUMNS,
    METADATA_KEY,
    PLAIN_LAYOUT,
    SCHEMA_VERSION,
    layout_of_columns,
)
from registry.locations import neurons_home

SPLIT = "train"
DATA_DIR = "data"
READ_GROUPS = 64  # row groups read and written at a time: memory stays a few MB per group
HF_METADATA_KEY = b"huggingface"  # where `datasets` keeps a Parquet file's features


class PublishError(ValueError):
    """The file cannot be published as it is; the message says why and what would do."""


@dataclass
class Shards:
    """The repo files of one collated file's records."""

    files: dict[str, Path]
    """Repo path -> local file, in row order."""
    metadata: dict[str, Any]
    schema: pa.Schema
    n_rows: int
    n_bytes: int
    notes: list[str] = field(default_factory=list)
    """What was done on the way (a conversion), for the user and the card."""

    @property
    def paths(self) -> list[str]:
        return list(self.files)


def shard_name(index: int, count: int) -> str:
    return f"{DATA_DIR}/{SPLIT}-{index:05d}-of-{count:05d}.parquet"


def check_publishable(path: Path, metadata: dict[str, Any]) -> list[str]:
    """Refuse what readers of the published layout would misread; the notes for the rest."""
    if not metadata:
        raise PublishError(
            f"{path}: not a file `neurons collate` wrote (no metadata); only those are pushed"
        )
    if metadata.get("partial"):
        done = metadata["partial"]
        raise PublishError(
            f"{path}: a partial file (records of {done.get('documents_done')} of "
            f"{done.get('documents_total')} documents, written while collating); push the "
            "finished file"
        )
    layers = [int(x) for x in metadata.get("layers") or []]
    if metadata.get("all_layers") is False or (
        "model_layers" in metadata and layers != list(range(int(metadata["model_layers"])))
    ):
        note = metadata.get("layers_note") or f"layers {layers} only"
        raise PublishError(
            f"{path}: {note}. The published layout has every layer (a reader finds neuron n of "
            "layer l at row l * d_mlp + n): `neurons merge` this file with the other layers' "
            "files, then push the merged file"
        )
    if layers != list(range(len(layers))):
        raise PublishError(
            f"{path}: layers {layers} are not 0-{len(layers) - 1}; every layer of the model "
            "must be there (neurons merge the other layers' files first)"
        )
    notes = []
    if "model_layers" not in metadata:
        notes.append(
            f"{path.name} does not say how many layers its model has (schema version 1): "
            f"layers 0-{len(layers) - 1} taken as all of them"
        )
    return notes


def _stage_key(path: Path, max_shard_bytes: int | None) -> str:
    st = path.stat()
    blob = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, SCHEMA_VERSION,
                       max_shard_bytes])  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def stage_shards(path: str | Path, max_shard_bytes: int | None = None) -> Shards:
    """The file's shards. A file of this schema version, rows in order, no larger than
    `max_shard_bytes` (None: any size) is its own one shard, its bytes as they are; any other is
    rewritten into shards under $NEURONS_HOME/push (or found there from before)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        metadata = read_metadata(path)
    except (pa.ArrowException, OSError) as error:
        raise PublishError(f"{path}: not a Parquet file ({error})") from None
    notes = check_publishable(path, metadata)
    current = str(metadata.get("schema_version") or "1") == SCHEMA_VERSION
    if current and (max_shard_bytes is None or path.stat().st_size <= max_shard_bytes):
        return _as_it_is(path, metadata, notes)
    folder = neurons_home() / "push" / _stage_key(path, max_shard_bytes)
    done = folder / "shards.json"
    if done.exists():
        saved = json.loads(done.read_text())
        files = {p: folder / p for p in saved["paths"]}
        schema = pq.read_schema(files[saved["paths"][0]])
        return Shards(files, saved["metadata"], schema, saved["n_rows"], saved["n_bytes"],
                      saved["notes"])  # fmt: skip
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DATA_DIR).mkdir(parents=True)
    try:
        shards = _write(path, metadata, notes, tmp, max_shard_bytes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / "shards.json").write_text(json.dumps({
        "paths": shards.paths, "metadata": shards.metadata, "n_rows": shards.n_rows,
        "n_bytes": shards.n_bytes, "notes": shards.notes,
    }))  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    shards.files = {p: folder / p for p in shards.paths}
    return shards


def _check_schema(path: Path, schema: pa.Schema) -> pa.Schema:
    """The schema of this version the columns must have (GLU or plain)."""
    layout = layout_of_columns(schema.names)
    expected = (GLU_LAYOUT if layout is GLU_LAYOUT else PLAIN_LAYOUT).arrow_schema()
    if schema.remove_metadata() != expected:
        raise PublishError(
            f"{path}: its columns are not those of schema version {SCHEMA_VERSION} "
            f"({len(schema)} columns against {len(expected)}); collate it again"
        )
    return expected


def _check_rows(path: Path, metadata: dict[str, Any], n_rows: int) -> int:
    n_neurons, n_layers = int(metadata["n_neurons"]), len(metadata["layers"])
    if n_rows != n_neurons * n_layers:
        raise PublishError(f"{path}: {n_rows} rows, not {n_layers} layers x {n_neurons} neurons")
    return n_neurons


def _as_it_is(path: Path, metadata: dict[str, Any], notes: list[str]) -> Shards:
    """The file as its own one shard: nothing decoded or written, only its keys checked."""
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    _check_schema(path, schema)
    n_neurons = _check_rows(path, metadata, source.metadata.num_rows)
    keys = source.read(columns=list(KEY_COLUMNS))
    _check_order(path, keys, 0, n_neurons)
    size = path.stat().st_size
    return Shards({shard_name(0, 1): path}, metadata, schema, keys.num_rows, size, notes)


def _source_table(
    path: Path, metadata: dict[str, Any], notes: list[str]
) -> pq.ParquetFile | pa.Table:
    """The file itself, or (schema version 1) its records rewritten in this version's columns."""
    version = str(metadata.get("schema_version") or "1")
    if version == SCHEMA_VERSION:
        return pq.ParquetFile(path)
    table = pq.read_table(path)
    accumulators = table_to_accumulators(table, int(metadata["top_k"]))
    metadata.update(schema_version=SCHEMA_VERSION, converted_from_schema_version=version)
    notes.append(
        f"{path.name} is of schema version {version}: converted to version {SCHEMA_VERSION} "
        "on the way (totals named _total, empty top-k slots holding a document index)"
    )
    return accumulators_to_table(accumulators, int(metadata["n_tokens"]), metadata)


def hub_features(schema: pa.Schema) -> dict:
    """`datasets`' features of these columns, as it writes them into a Parquet file."""
    from datasets import Features

    return Features.from_arrow_schema(schema).to_dict()


def _write(
    path: Path,
    metadata: dict[str, Any],
    notes: list[str],
    folder: Path,
    max_shard_bytes: int | None,
) -> Shards:
    """Shards of whole row groups, about `max_shard_bytes` each, written side by side (the
    encoding releases the GIL: one core each)."""
    source = _source_table(path, metadata, notes)
    schema = source.schema_arrow if isinstance(source, pq.ParquetFile) else source.schema
    expected = _check_schema(path, schema)
    n_rows = source.metadata.num_rows if isinstance(source, pq.ParquetFile) else source.num_rows
    n_neurons = _check_rows(path, metadata, n_rows)
    groups = _group_starts(source)
    limit = max_shard_bytes or path.stat().st_size
    per_shard = math.ceil(n_rows / max(1, math.ceil(path.stat().st_size / limit)))
    spans = _spans(groups, per_shard, n_rows)
    meta = {
        METADATA_KEY: json.dumps(metadata),
        HF_METADATA_KEY: json.dumps({"info": {"features": hub_features(expected)}}),
    }
    out_schema = expected.with_metadata(meta)
    paths = [shard_name(i, len(spans)) for i in range(len(spans))]
    rows_per_group = groups[1] - groups[0] if len(groups) > 1 else n_rows

    def write(i: int) -> None:
        (first, stop), row = spans[i], spans[i][0]
        with _writer(folder / paths[i], out_schema) as writer:
            # a reader of the file's own per thread: one ParquetFile is not for sharing
            own = pq.ParquetFile(path) if isinstance(source, pq.ParquetFile) else source
            for batch in _batches(own, groups, first, stop):
                _check_order(path, batch, row, n_neurons)
                table = pa.Table.from_batches([batch]).cast(out_schema)
                writer.write_table(table, row_group_size=rows_per_group)
                row += batch.num_rows

    with ThreadPoolExecutor(max_workers=min(len(spans), os.cpu_count() or 1)) as pool:
        list(pool.map(write, range(len(spans))))
    n_bytes = sum((folder / p).stat().st_size for p in paths)
    files = {p: folder / p for p in paths}
    return Shards(files, metadata, out_schema, n_rows, n_bytes, notes)


def _group_starts(source: pq.ParquetFile | pa.Table) -> list[int]:
    """The first row of each row group (a table in memory: of each 128 rows), then the total."""
    if isinstance(source, pa.Table):
        return [*range(0, source.num_rows, 128), source.num_rows]
    starts = [0]
    for g in range(source.metadata.num_row_groups):
        starts.append(starts[-1] + source.metadata.row_group(g).num_rows)
    return starts


def _spans(groups: list[int], per_shard: int, n_rows: int) -> list[tuple[int, int]]:
    """[first row, stop) of each shard: whole row groups, a new shard where one would pass
    `per_shard` rows."""
    spans, first = [], 0
    for start in groups[1:-1]:
        if start - first >= per_shard:
            spans.append((first, start))
            first = start
    spans.append((first, n_rows))
    return spans


def _batches(source: pq.ParquetFile | pa.Table, groups: list[int], first: int, stop: int):
    """The rows [first, stop) (row-group bounds), READ_GROUPS row groups at a time."""
    if isinstance(source, pa.Table):
        yield from source.slice(first, stop - first).to_batches(max_chunksize=128 * READ_GROUPS)
        return
    indexes = [g for g in range(len(groups) - 1) if first <= groups[g] < stop]
    for at in range(0, len(indexes), READ_GROUPS):
        yield from source.read_row_groups(indexes[at : at + READ_GROUPS]).to_batches()


def _writer(file: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # as collation writes (writer.write_table_atomically): one neuron is one row-group read
    return pq.ParquetWriter(file, schema, **parquet_options(schema))


def _check_order(path: Path, batch: pa.RecordBatch, start: int, n_neurons: int) -> None:
    rows = np.arange(start, start + batch.num_rows)
    layers, neurons = batch.column("layer").to_numpy(), batch.column("neuron").to_numpy()
    wrong = np.flatnonzero((layers != rows // n_neurons) | (neurons != rows % n_neurons))
    if len(wrong):
        at = int(rows[wrong[0]])
        raise PublishError(
            f"{path}: row {at} holds layer {layers[wrong[0]]} neuron {neurons[wrong[0]]}, not "
            f"layer {at // n_neurons} neuron {at % n_neurons}: rows must be sorted by (layer, "
            "neuron), every layer whole, as `neurons collate` and `neurons merge` write them"
        )
