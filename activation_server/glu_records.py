"""GLU quadrant records from Parquet datasets, shaped for HTTP, with example text on request."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

from activation_server.errors import UpstreamError
from activation_server.runners import RunnerPool
from activation_server.schemas import GluExample, GluNeuronRecord, GluQuadrant
from activations.corpus import Corpus, load_corpus
from activations.derived_scalars import DST_TO_HOOK, HOOK_POST, HOOK_PRE_LINEAR
from activations.glu_reader import GluParquetDataset
from activations.lru import LruCache
from activations.schema import (
    RecordLayout,
    count_column,
    freq_column,
    has_max,
    layout_of_columns,
    max_indices_column,
    max_positions_column,
    max_values_column,
    mean_column,
)
from registry.metadata import NeuronDatasetMetadata
from registry.paths import local_path


def _float(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class GluRecordService:
    def __init__(self, runners: RunnerPool, cache_size: int, max_context: int):
        self.runners = runners
        self.max_context = max_context
        self._datasets: dict[str, GluParquetDataset] = {}
        self._corpora: dict[tuple, Corpus | str] = {}
        self._lock = threading.Lock()
        self.cache = LruCache(cache_size)

    def dataset(self, metadata: NeuronDatasetMetadata) -> GluParquetDataset:
        path = metadata.neuron_dataset_path
        with self._lock:
            if path not in self._datasets:
                self._datasets[path] = GluParquetDataset(path)
            return self._datasets[path]

    async def record(
        self,
        metadata: NeuronDatasetMetadata,
        layer: int,
        neuron: int,
        all_hooks: bool,
        context: int,
        activations: bool,
    ) -> GluNeuronRecord:
        key = (metadata.key, layer, neuron, all_hooks, context, activations)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        record = await asyncio.to_thread(
            self._build, metadata, layer, neuron, all_hooks, context, activations
        )
        self.cache.put(key, record)
        return record

    def _read(
        self, metadata: NeuronDatasetMetadata, layer: int, neuron: int, hooks: list[str] | None
    ) -> tuple:
        """The row's columns for these hooks' examples (all hooks: None) and every summary:
        a cold read decodes only what the answer shows."""
        dataset = self.dataset(metadata)
        source = metadata.neuron_dataset_path
        try:
            columns = None
            if hooks is not None:
                available = dataset.columns
                layout = layout_of_columns(available)
                wanted = [freq_column(q) for q in layout.quadrants]
                wanted += [count_column(q) for q in layout.quadrants]
                wanted += [mean_column(q, h) for q in layout.quadrants for h in layout.hooks]
                for q, h in layout.max_pairs():
                    if h in hooks:
                        wanted += [max_values_column(q, h), max_indices_column(q, h)]
                        wanted.append(max_positions_column(q, h))
                columns = [c for c in wanted if c in available]
            row = dataset.read_record(layer, neuron, columns)
            return row, dataset.describe()
        except FileNotFoundError as error:
            hint = ""
            if local_path(source) is not None:
                hint = (
                    f"; build it with `neurons collate --model {metadata.model} --out {source}`"
                    if metadata.model
                    else ""
                )
            raise UpstreamError(404, f"dataset {source} does not exist ({error}){hint}") from None
        except TimeoutError as error:
            raise UpstreamError(504, f"dataset {source} timed out: {error}") from None
        except OSError as error:
            raise UpstreamError(502, f"dataset {source} could not be read: {error}") from None

    def _build(self, metadata, layer, neuron, all_hooks, context, activations) -> GluNeuronRecord:
        hook = DST_TO_HOOK.get(metadata.derived_scalar_type, HOOK_POST)
        row, description = self._read(metadata, layer, neuron, None if all_hooks else [hook])
        file_metadata = description.get("metadata") or {}
        layout: RecordLayout = layout_of_columns(list(row))
        hooks = [h for h in layout.hooks if all_hooks or h == hook]
        quadrants = []
        for q in layout.quadrants:
            examples = {}
            for h in hooks:
                if not has_max(q, h) or max_values_column(q, h) not in row:
                    continue
                positions = row.get(max_positions_column(q, h)) or []
                items = zip(
                    row[max_values_column(q, h)], row[max_indices_column(q, h)], strict=True
                )
                examples[h] = [
                    GluExample(
                        value=value,
                        document_index=doc,
                        position=positions[i] if i < len(positions) else None,
                    )
                    for i, (value, doc) in enumerate(items)
                    if doc >= 0
                ]
            quadrants.append(
                GluQuadrant(
                    name=q,
                    freq=_float(row.get(freq_column(q))),
                    count=row.get(count_column(q)),
                    means={h: _float(row.get(mean_column(q, h))) for h in layout.hooks},
                    examples=examples,
                )
            )
        record = GluNeuronRecord(
            dataset=metadata,
            layer=layer,
            neuron=neuron,
            hook=hook,
            quadrants=quadrants,
            file_metadata=file_metadata,
        )
        if context > 0:
            record.context_note = self._add_context(
                record, metadata, file_metadata, min(context, self.max_context), activations
            )
        return record

    def _corpus(self, metadata: NeuronDatasetMetadata, file_metadata: dict) -> Corpus:
        """The documents the record's indices point into, loaded once (or the reason not)."""
        name = file_metadata.get("corpus") or metadata.corpus
        if not name or not metadata.model:
            raise LookupError("the dataset names no corpus and model")
        spec, _, tokens = name.partition("@")
        max_tokens = int(tokens or file_metadata.get("max_tokens") or 1024)
        key = (metadata.model, spec, max_tokens)
        with self._lock:
            held = self._corpora.get(key)
        if held is None:
            try:
                runner = self.runners.get(metadata.model)
                held = load_corpus(spec, runner.tokenizer, max_tokens)
            except Exception as error:  # offline hub, missing file: remember why
                held = f"corpus {name!r} is not available here: {error}"
            with self._lock:
                self._corpora[key] = held
        if isinstance(held, str):
            raise LookupError(held)
        return held

    def _add_context(self, record, metadata, file_metadata, context, activations) -> str | None:
        try:
            corpus = self._corpus(metadata, file_metadata)
        except LookupError as error:
            return str(error)
        runner = self.runners.get(metadata.model)
        tokenizer = runner.tokenizer
        max_tokens = int(file_metadata.get("max_tokens") or runner.max_tokens)
        wanted = []  # (example, ids cut after the window)
        for quadrant in record.quadrants:
            for examples in quadrant.examples.values():
                for example in examples:
                    if example.position is None or example.document_index >= len(corpus):
                        continue
                    text = corpus.documents[example.document_index]
                    ids = tokenizer(text, truncation=True, max_length=max_tokens).input_ids
                    start = max(0, example.position - context)
                    stop = min(len(ids), example.position + context + 1)
                    example.window_start = start
                    example.tokens = [tokenizer.decode([i]) for i in ids[start:stop]]
                    wanted.append((example, ids[:stop], start))
        if activations and wanted:
            hooks = list(DST_TO_HOOK.values())
            values = runner.neuron_values(
                [ids for _, ids, _ in wanted], record.layer, record.neuron, hooks
            )
            # a refactored file recorded in and hook_post with this neuron's sign flipped
            sign = 1.0
            if file_metadata.get("refactor_glu"):
                sign = runner.refactor_sign(record.layer, record.neuron)
            flipped = {HOOK_PRE_LINEAR, HOOK_POST} if sign < 0 else set()
            for (example, _, start), by_hook in zip(wanted, values, strict=True):
                example.activations = {
                    h: [-x for x in v[start:]] if h in flipped else v[start:]
                    for h, v in by_hook.items()
                }
        return None
