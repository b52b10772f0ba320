"""Explanation datasets on disk and afar, in neuron-explainer's layout: one file per neuron,
`{path}/{layer}/{neuron}.jsonl`, one line of NeuronSimulationResults. Published ones (TDB's
GPT-2 sets) are read by the same code as ours, through the record reader (http(s), az://,
gs://, hf://, local). Ours are written whole and atomically (a temporary file in the same
folder, then a rename): a reader or a killed run never sees half a file."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from activations.explanations.results import (
    NeuronSimulationResults,
    ScoredExplanation,
    dumps,
    loads,
)
from activations.io.errors import MalformedRecordError
from activations.io.storage import SourceNotFoundError, SourceReader
from activations.records.tdb_json import NeuronId
from registry.paths import join_path, local_path


def explanation_path(root: str, layer: int, neuron: int) -> str:
    return join_path(root, str(int(layer)), f"{int(neuron)}.jsonl")


class ExplanationStore:
    """Reads any explanation dataset; writes local ones, one writer per file at a time."""

    def __init__(self, reader: SourceReader | None = None) -> None:
        self.reader = reader or SourceReader()
        self._locks: dict[str, asyncio.Lock] = {}

    async def read(self, root: str, layer: int, neuron: int) -> NeuronSimulationResults | None:
        """A neuron's explanations, None where the dataset has no file for it."""
        path = explanation_path(root, layer, neuron)
        try:
            data = await self.reader.read_bytes(path)
        except SourceNotFoundError:
            return None
        try:
            results = loads(data)
        except ValueError as error:
            raise MalformedRecordError(f"{path}: not an explanation file: {error}") from None
        found = results.neuron_id
        if (found.layer_index, found.neuron_index) != (layer, neuron):
            raise MalformedRecordError(
                f"{path} holds layer {found.layer_index} neuron {found.neuron_index}"
            )
        return results

    async def add(
        self, root: str, layer: int, neuron: int, new: list[ScoredExplanation]
    ) -> NeuronSimulationResults:
        """Add scored explanations to a neuron's file (an explanation already there keeps its
        score) and write it atomically."""
        path = local_path(explanation_path(root, layer, neuron))
        if path is None:
            raise ValueError(f"explanations are written to local folders only, not {root!r}")
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            current = await self.read(root, layer, neuron)
            if current is None:
                current = NeuronSimulationResults(
                    neuron_id=NeuronId(layer_index=layer, neuron_index=neuron),
                    scored_explanations=[],
                )
            merged = current.merged(new)
            await asyncio.to_thread(write_atomically, Path(path), dumps(merged) + b"\n")
            return merged

    async def close(self) -> None:
        await self.reader.close()


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def local_files(root: str) -> Iterator[tuple[int, int, Path]]:
    """(layer, neuron, file) of every explanation file of a local dataset."""
    base = local_path(root)
    if base is None or not os.path.isdir(base):
        return
    for layer_dir in sorted(Path(base).iterdir()):
        if not (layer_dir.is_dir() and layer_dir.name.isdigit()):
            continue
        for file in sorted(layer_dir.glob("*.jsonl")):
            if file.stem.isdigit():
                yield int(layer_dir.name), int(file.stem), file
