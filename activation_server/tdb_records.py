"""neuron-explainer (`tdb_json`) records over any supported source, answered in its shape."""

from __future__ import annotations

from activation_server.errors import UpstreamError
from activation_server.settings import ServerSettings
from activations.tdb_records import TOKEN_PAIR_DSTS, MalformedRecordError, neuron_record_response
from activations.tdb_store import TdbRecordStore
from registry.metadata import NeuronDatasetMetadata
from registry.storage import (
    SourceNotFoundError,
    SourceReader,
    SourceTimeoutError,
    SourceUnavailableError,
)


class TdbRecordService:
    """One shared reader (one aiohttp session) and one LRU of parsed records."""

    def __init__(self, settings: ServerSettings):
        self.reader = SourceReader(timeout_s=settings.upstream_timeout_s)
        self.store = TdbRecordStore(self.reader, cache_size=settings.record_cache_size)

    async def record(self, metadata: NeuronDatasetMetadata, layer: int, neuron: int) -> dict:
        path = metadata.neuron_dataset_path
        try:
            record = await self.store.get(
                path,
                layer,
                neuron,
                token_pairs=metadata.derived_scalar_type in TOKEN_PAIR_DSTS,
            )
        except SourceNotFoundError as error:
            raise UpstreamError(
                404, f"no record for layer {layer} neuron {neuron} in {path}: {error}"
            ) from None
        except SourceTimeoutError as error:
            raise UpstreamError(504, f"source {path} timed out: {error}") from None
        except (SourceUnavailableError, MalformedRecordError) as error:
            raise UpstreamError(502, f"source {path} failed: {error}") from None
        response = neuron_record_response(record, metadata.short_name)
        return response.model_dump(mode="json", by_alias=True)

    async def close(self) -> None:
        await self.reader.close()
