"""Exact merge of collated files over disjoint document sets (scale-out, layer splits)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from activations.collate.config import DEFAULT_ROWS_PER_GROUP
from activations.collate.output import check_output
from activations.collate.run import completeness
from activations.collate.writer import (
    accumulators_to_table,
    document_ranges,
    read_metadata,
    table_to_accumulators,
    write_table_atomically,
)
from activations.records.schema import SCHEMA_VERSION

MUST_AGREE = (
    "model",
    "corpus",
    "top_k",
    "max_tokens",
    "layout",
    "refactor_glu",
    "n_neurons",
    "histogram",  # the bins (files of earlier versions hold none: they merge among themselves)
)


def merge_files(
    paths: list[str | os.PathLike],
    out: str | os.PathLike,
    overwrite: bool = False,
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP,
) -> Path:
    """Merge files of the same model and corpus. Files over the same layers must cover disjoint
    documents (their totals add); files over disjoint layers of the same documents are joined."""
    out = Path(out)
    check_output(out, overwrite, inputs=paths)
    if len(paths) < 2:
        raise ValueError("merge needs at least two files")
    metadatas = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
        try:
            metadata = read_metadata(path)
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{path} is not a Parquet file ({error})") from None
        if not metadata:
            raise ValueError(f"{path} was not written by `neurons collate` (no metadata)")
        metadatas.append(metadata)
    first = metadatas[0]
    for path, metadata in zip(paths[1:], metadatas[1:], strict=True):
        differing = [key for key in MUST_AGREE if metadata.get(key) != first.get(key)]
        if differing:
            raise ValueError(
                f"{path} differs from {paths[0]} in {', '.join(differing)}; only files of the "
                "same model, corpus and settings merge"
            )
    merged: dict = {}
    tokens_by_docs: dict[tuple, int] = {}
    for path, metadata in zip(paths, metadatas, strict=True):
        table = pq.read_table(path)
        ranges = tuple(document_ranges(metadata))
        for layer, acc in table_to_accumulators(table, metadata["top_k"]).items():
            if layer in merged:
                held_ranges, held = merged[layer]
                if _overlap(held_ranges, ranges):
                    raise ValueError(
                        f"{path} covers documents {list(ranges)} of layer {layer}, overlapping "
                        f"{list(held_ranges)} already merged: documents would count twice"
                    )
                held.merge(acc)
                merged[layer] = (held_ranges + ranges, held)
            else:
                merged[layer] = (ranges, acc)
        tokens_by_docs[ranges] = metadata["n_tokens"]
    all_ranges = [merged[layer][0] for layer in merged]
    if any(sorted(r) != sorted(all_ranges[0]) for r in all_ranges):
        raise ValueError("the merged layers would cover different documents; merge per layer set")
    n_tokens = sum(tokens_by_docs.values())
    metadata = dict(first)
    metadata.update(
        documents=sorted(list(r) for r in all_ranges[0]),
        n_documents=sum(b - a for a, b in all_ranges[0]),
        n_tokens=n_tokens,
        layers=sorted(merged),
        merged_from=[str(p) for p in paths],
    )
    metadata["schema_version"] = SCHEMA_VERSION  # written anew, in this version's columns
    fingerprints = {}  # each document range's, as its file recorded it
    for part in metadatas:
        fingerprints.update(part.get("corpus_sha256") or {})
    metadata["corpus_sha256"] = fingerprints or None
    if "model_layers" in first:  # version 2 files say how many layers the model has
        metadata.update(completeness(sorted(merged), first["model_layers"]))
    table = accumulators_to_table({k: v[1] for k, v in merged.items()}, n_tokens, metadata)
    write_table_atomically(table, out, rows_per_group, overwrite)
    return out


def _overlap(a: tuple, b: tuple) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)
