"""neuron-explainer (`tdb_json`) records over any supported source, through the record-source
protocol, answered in neuron-explainer's shape."""

from __future__ import annotations

from activations.io.errors import RecordError, RecordNotFoundError, UpstreamError, in_context
from activations.io.storage import SourceReader
from activations.pools import Pools
from activations.records.answers import NeuronRecordResponse, neuron_record_response
from activations.records.explainer import (
    ExplainerAttentionRecord,
    ExplainerRecord,
    attention_record,
    from_activation_records,
)
from activations.records.tdb_json import NeuronRecord
from activations.records.tdb_store import TdbRecordStore
from activations.sources.source import (
    NOT_KEPT,
    DatasetShape,
    RecordQuery,
    SourceSettings,
    public_name,
)
from registry.metadata import NeuronDatasetMetadata
from registry.vocabulary import TOKEN_PAIR_DSTS


class TdbJsonFormat:
    """neuron-explainer's JSON format: it opens a source per registered dataset of its format;
    what every neuron-explainer source shares: one reader (one aiohttp session) and one LRU
    of parsed records."""

    def __init__(self, settings: SourceSettings, pools: Pools) -> None:
        self.reader = SourceReader(timeout_s=settings.upstream_timeout_s, pools=pools)
        self.store = TdbRecordStore(
            self.reader, cache_size=settings.cache_size, cache_bytes=settings.cache_bytes
        )

    def source(self, metadata: NeuronDatasetMetadata) -> TdbDatasetSource:
        return TdbDatasetSource(metadata, self.store)

    async def close(self) -> None:
        await self.reader.close()


class TdbDatasetSource:
    """One registered neuron-explainer dataset's records (a RecordSource)."""

    NO_SHAPE = "a neuron-explainer dataset: one file per neuron, and no index of them"

    def __init__(self, metadata: NeuronDatasetMetadata, store: TdbRecordStore) -> None:
        self.metadata = metadata
        self.store = store

    def known_shape(self) -> tuple[DatasetShape | None, str | None]:
        return None, self.NO_SHAPE

    async def shape(self) -> DatasetShape | None:
        return None

    @property
    def token_pairs(self) -> bool:
        return self.metadata.derived_scalar_type in TOKEN_PAIR_DSTS

    async def _load(self, layer: int, neuron: int) -> NeuronRecord:
        path = self.metadata.neuron_dataset_path
        try:
            return await self.store.get(path, layer, neuron, token_pairs=self.token_pairs)
        except RecordError as error:
            context = f"no record for layer {layer} neuron {neuron} in {path}"
            raise in_context(error, context) from None

    def version(self) -> object:
        return NOT_KEPT  # its store keeps the records; files may change under it

    async def record(self, layer: int, neuron: int, query: RecordQuery) -> NeuronRecordResponse:
        record = await self._load(layer, neuron)
        return neuron_record_response(record, self.metadata.short_name)

    async def explainer_record(self, layer: int, neuron: int) -> ExplainerRecord:
        if self.token_pairs:
            raise RecordNotFoundError(
                f"{self.metadata.short_name} ({self.metadata.derived_scalar_type}) holds "
                "records by token pair: POST /attention_head_record reads them"
            )
        record = await self._load(layer, neuron)
        top, random = record.most_positive_activation_records, record.random_sample
        return from_activation_records(public_name(self.metadata), top, random)

    async def attention_record(self, layer: int, neuron: int) -> ExplainerAttentionRecord:
        if not self.token_pairs:
            raise RecordNotFoundError(
                f"{self.metadata.short_name} ({self.metadata.derived_scalar_type}) holds one "
                "value per token: POST /neuron_record reads it"
            )
        record = await self._load(layer, neuron)
        top, random = record.most_positive_activation_records, record.random_sample
        try:
            return attention_record(public_name(self.metadata), top, random)
        except ValueError as error:
            raise UpstreamError(f"record of layer {layer} neuron {neuron}: {error}") from None

    async def close(self) -> None:
        pass
