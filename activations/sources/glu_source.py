"""GLU quadrant records from Parquet datasets (glu_parquet), through the record-source protocol.

A record reads one row's columns (only those its answer shows) on a pool thread for its kind of
file (a remote read has a deadline), caches the answer, and with ?context=N adds each example's
text (tokenized on the CPU pool) and, on request, the neuron's values on it (the model's worker).
"""

from __future__ import annotations

import threading
from typing import Any

from activations.io import hub
from activations.io.errors import (
    RecordError,
    RecordNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from activations.io.lru import LruCache
from activations.io.storage import StorageError, classify_error
from activations.pools import PoolBusyError, Pools, PoolTimeoutError
from activations.records.answers import GluNeuronRecord
from activations.records.file_metadata import read_file_metadata
from activations.records.glu_parquet import DEFAULT_CACHED_ROW_GROUPS, GluParquetReader
from activations.records.schema import layout_of_columns
from activations.records.sizes import deep_bytes
from activations.sources.glu_explainer import glu_explainer_record
from activations.sources.glu_rows import FileMetadataOf, record_columns, summary_of_row
from activations.sources.source import DatasetShape, ModelProvider, RecordQuery, SourceSettings
from activations.text.corpora import Corpora
from activations.text.example_text import ExampleText, refactored
from registry import find_model
from registry.metadata import NeuronDatasetMetadata
from registry.paths import local_path
from registry.vocabulary import DST_TO_HOOK, GLU_HOOKS


def describe_source(metadata: NeuronDatasetMetadata) -> str:
    """The source a failure is of: the Hub (and which) for hf:// datasets, else the path."""
    path = metadata.neuron_dataset_path
    if path.startswith("hf://"):
        pinned = f" at revision {metadata.revision}" if metadata.revision else ""
        return f"the Hugging Face Hub ({hub.endpoint()}) for {path}{pinned}"
    return f"dataset {path}"


def _unlocated_note(windows, why: str | None) -> str | None:
    """What the answer says of examples whose max is not known (the file stores no positions
    and the model has not run on their documents)."""
    if not windows.unlocated:
        return None
    because = f": {why}" if why else ""
    return (
        f"{windows.unlocated} examples show their document's opening: the file stores no "
        f"positions, and the max token is located once the model runs on them{because}"
    )


class GluParquetFormat:
    """The GLU Parquet format: it opens a source per registered dataset of its format; what
    every GLU source shares: one reader per file path, one cache of answers, the pools
    that read, and the corpora and model used for example text."""

    def __init__(self, models: ModelProvider, settings: SourceSettings, pools: Pools) -> None:
        self.settings = settings
        self.models = models
        self.pools = pools
        self.text = ExampleText(Corpora(models, settings.upstream_timeout_s))
        self.cache: LruCache[tuple, GluNeuronRecord] = LruCache(
            settings.cache_size, max_weight=settings.cache_bytes
        )
        self._datasets: dict[tuple[str, str | None], GluParquetReader] = {}
        self._lock = threading.Lock()
        # the decoded row groups of every dataset, within one budget
        self.decoded: LruCache = LruCache(DEFAULT_CACHED_ROW_GROUPS, settings.decoded_bytes)

    def dataset(self, path: str, revision: str | None = None) -> GluParquetReader:
        """One reader per (path, revision), shared by every dst of that dataset."""
        with self._lock:
            key = (path, revision)
            if key not in self._datasets:
                timeout = self.settings.upstream_timeout_s
                self._datasets[key] = GluParquetReader(
                    path, timeout_s=timeout, revision=revision, decoded=self.decoded,
                    read_ahead=self.settings.read_ahead,
                )  # fmt: skip
            return self._datasets[key]

    def source(self, metadata: NeuronDatasetMetadata) -> GluDatasetSource:
        return GluDatasetSource(metadata, self)

    async def close(self) -> None:
        with self._lock:
            datasets, self._datasets = list(self._datasets.values()), {}
        for dataset in datasets:
            dataset.close()


class GluDatasetSource:
    """One registered GLU dataset's records (a RecordSource), read by its format's file
    reader."""

    def __init__(self, metadata: NeuronDatasetMetadata, shared: GluParquetFormat) -> None:
        self.metadata = metadata
        self.shared = shared
        self.hook = DST_TO_HOOK[metadata.derived_scalar_type]  # the registry checked it
        self._file_metadata = FileMetadataOf()

    @property
    def dataset(self) -> GluParquetReader:
        return self.shared.dataset(self.metadata.neuron_dataset_path, self.metadata.revision)

    def _shape(self, description: dict[str, Any]) -> DatasetShape:
        file_metadata = read_file_metadata(description.get("metadata"))
        layout = layout_of_columns(description["columns"])
        return DatasetShape(
            layers=description["layers"],
            neurons_per_layer=description["n_neurons"],
            top_k=description["top_k"],
            hooks=list(layout.hooks),
            corpus=file_metadata.corpus or self.metadata.corpus,
        )

    def known_shape(self) -> tuple[DatasetShape | None, str | None]:
        if not self.dataset.is_open:
            local = local_path(self.metadata.neuron_dataset_path)
            if local is None:
                return None, "a remote dataset: its shape is known once it is opened"
            try:  # a local file's footers: a millisecond
                return self._shape(self.dataset.describe()), None
            except (RecordError, OSError) as error:
                return None, str(self._error(error))
        return self._shape(self.dataset.describe()), None

    def version(self) -> object:
        """A local dataset's files (replaced under a running server: read anew); a remote one
        is read at its listed versions once opened."""
        return self.dataset.refresh()

    async def shape(self) -> DatasetShape:
        return self._shape(await self._in_pool(self.dataset.describe))

    async def record(self, layer: int, neuron: int, query: RecordQuery) -> GluNeuronRecord:
        context = min(query.context, self.shared.settings.max_context)
        activations = query.activations and context > 0
        stamp = self.dataset.refresh()  # a file replaced under the server is read anew
        path = self.metadata.neuron_dataset_path
        revision = self.metadata.revision
        key = (self.metadata, path, revision, stamp, layer, neuron, query.all_hooks, context)
        key += (activations, find_model(self.metadata.model) if context else None)
        cached = self.shared.cache.get(key)
        if cached is not None:
            return cached
        record = self._decoded_summary(layer, neuron, query.all_hooks)
        if record is None:
            record = await self._in_pool(self._summary, layer, neuron, query.all_hooks)
        if context:
            record.context_note = await self._add_text(record, context, activations)
        if query.kept:
            self.shared.cache.put(key, record, weight=deep_bytes(record))
        return record

    def _decoded_summary(self, layer: int, neuron: int, all_hooks: bool) -> GluNeuronRecord | None:
        """A local dataset's record, answered on the caller's thread where its row group is
        decoded already (a fraction of a millisecond, less than a hop to a pool thread and
        back, whose hand-offs were most of a cold lookup's cost); else None."""
        if local_path(self.metadata.neuron_dataset_path) is None or not self.dataset.is_open:
            return None
        try:
            return self._summary(layer, neuron, all_hooks, decoded_only=True)
        except Exception:  # noqa: BLE001 - the pool's read says what is wrong, mapped
            return None

    async def _in_pool(self, fn, *args):
        """fn(*args) on the pool of this dataset's kind: a remote one within its deadline."""
        remote = local_path(self.metadata.neuron_dataset_path) is None
        pool = self.shared.pools.remote if remote else self.shared.pools.local
        deadline = self.shared.settings.upstream_timeout_s if remote else None
        try:
            return await pool.run(fn, *args, timeout=deadline)
        except PoolTimeoutError as error:
            raise UpstreamTimeoutError(f"{describe_source(self.metadata)}: {error}") from None
        except PoolBusyError:
            raise  # the pool is full, not the source: 503, ask again shortly
        except (RecordError, OSError) as error:
            raise self._error(error) from None
        except Exception as error:
            if not remote:
                raise
            # the libraries of remote reads fail in their own ways (a server that ignores
            # Range, an HTTP client's error types): all mean the source failed
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            raise UpstreamError(
                f"{describe_source(self.metadata)} could not be read: {reason}"
            ) from None

    async def _add_text(
        self, record: GluNeuronRecord, context: int, activations: bool
    ) -> str | None:
        """Each example's text (and values; and its max, where the file stores none); returns
        what the answer should say of what could not be done."""
        text, metadata, pools = self.shared.text, self.metadata, self.shared.pools
        file_metadata = record.file_metadata
        budget = self.shared.settings.max_example_tokens
        try:
            if text.corpora.is_remote(metadata, file_metadata):  # documents by ranged reads
                fetched = await self._in_pool(text.documents, record, metadata, file_metadata)
            else:
                fetched = await pools.cpu.run(text.documents, record, metadata, file_metadata)
            windows = await pools.cpu.run(text.windows, record, metadata, fetched, context, budget)
        except LookupError as error:
            return str(error)
        except UpstreamError as error:
            return f"example text: {error}"
        notes = []
        if not ((activations or windows.unlocated) and windows.documents):
            return _unlocated_note(windows, None)
        why_not = self.shared.models.why_not_run(metadata.model) if metadata.model else None
        if why_not is not None:
            wanted = [_unlocated_note(windows, None), "values need the model" * activations]
            return "; ".join(n for n in wanted if n) + f": {why_not}"
        if windows.left_out:
            notes.append(
                f"values of {windows.left_out} examples are left out: their documents are over "
                f"the {budget}-token budget of one request"
            )
        try:
            found = await self.neuron_values(record, windows.documents, list(GLU_HOOKS))
        except UpstreamError as error:  # the model cannot load: the text stays, said why
            return "; ".join([*notes, f"values need the model: {error}"])
        if windows.unlocated:
            await pools.cpu.run(text.locate, record, metadata, windows, found, fetched, context)
        if activations:
            text.apply(windows, found)
        notes.append(_unlocated_note(windows, "their documents are over the token budget"))
        return "; ".join(n for n in notes if n) or None

    async def neuron_values(
        self, record: GluNeuronRecord, id_lists: list[list[int]], hooks: list[str]
    ) -> list[dict[str, list[float]]]:
        """The neuron's values on token ids, as the file records them: refactored where its
        metadata says so or, where it says nothing (the published files), where the model's
        registry entry does; the model gives them as its entry says."""
        layer, neuron = record.layer, record.neuron
        said = record.file_metadata.refactor_glu

        def values(chunk):
            def run(runner):
                found = runner.neuron_values(chunk, layer, neuron, hooks)
                model_refactored = runner.metadata.refactor_glu
                file_refactored = model_refactored if said is None else bool(said)
                differ = file_refactored != model_refactored
                sign = runner.refactor_sign(layer, neuron) if differ else 1.0
                return [refactored(one, sign) for one in found]

            return run

        # one pass's worth per job, in the background: live requests and searches go between
        # them, and a client that leaves drops the passes not begun (the model runs: torch is
        # imported already)
        from activations.models.live import ModelRunner
        from activations.models.requests import one_pass_each

        out: list[dict[str, list[float]]] = []
        for chunk in one_pass_each(id_lists, ModelRunner.MAX_BATCH_TOKENS):
            model = self.metadata.model
            out += await self.shared.models.run(model, values(chunk), background=True)
        return out

    async def explainer_record(self, layer: int, neuron: int):
        return await glu_explainer_record(self, layer, neuron)

    async def attention_record(self, layer: int, neuron: int):
        raise RecordNotFoundError(
            f"{self.metadata.short_name} is a GLU dataset (one value per token): "
            "POST /neuron_record reads it"
        )

    async def close(self) -> None:
        self.dataset.close()

    def error(self, error: Exception) -> RecordError:
        """A file-system or reader error of this dataset as a record error (404, 502, 504)."""
        return self._error(error)

    def _error(self, error: Exception) -> RecordError:
        """A file-system or reader error, with the dataset and what to do; the record errors
        of the reader (out of range, corrupt) are already said in full."""
        if isinstance(error, RecordError) and not isinstance(error, StorageError):
            return error
        source = self.metadata.neuron_dataset_path
        if not isinstance(error, StorageError):
            error = classify_error(source, error)
        if isinstance(error, RecordNotFoundError):
            hint = ""
            if local_path(source) is not None and self.metadata.model:
                build = f"neurons collate --model {self.metadata.model} --out {source}"
                hint = f"; build it with `{build}`"
            return RecordNotFoundError(f"dataset {source} does not exist ({error}){hint}")
        return error

    def _read(
        self, layer: int, neuron: int, hooks: list[str] | None, decoded_only: bool = False
    ) -> dict[str, Any] | None:
        """The row's columns for these hooks' examples (all hooks: None) and every summary:
        a cold read decodes only what the answer shows. `decoded_only`: None unless its row
        group is decoded already (then nothing is read or waited for)."""
        dataset = self.dataset
        columns = None
        if hooks is not None:
            columns = record_columns(tuple(dataset.columns), tuple(hooks))
        if decoded_only:
            return dataset.decoded_record(layer, neuron, columns)
        return dataset.read_record(layer, neuron, columns)  # errors are mapped by _in_pool

    def _summary(
        self, layer: int, neuron: int, all_hooks: bool, decoded_only: bool = False
    ) -> GluNeuronRecord | None:
        """The record without example text: one row read (`decoded_only`: see _read)."""
        row = self._read(layer, neuron, None if all_hooks else [self.hook], decoded_only)
        if row is None:
            return None
        file_metadata = self._file_metadata(self.dataset.metadata)
        return summary_of_row(
            row, layer, neuron, self.metadata, self.hook, all_hooks, file_metadata
        )
