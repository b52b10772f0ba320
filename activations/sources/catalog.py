"""The record sources of every registered dataset: one per dataset, made on first use by its
format's records (a format is one entry of its `_formats`)."""

from __future__ import annotations

import threading

from activations.pools import Pools
from activations.sources.glu_source import GluParquetFormat
from activations.sources.source import ModelProvider, RecordSource, SourceSettings
from activations.sources.tdb_source import TdbJsonFormat
from registry.metadata import DatasetFormat, NeuronDatasetMetadata


class RecordSources:
    """A source per registered dataset, made on first use; datasets of one file share it."""

    def __init__(
        self,
        models: ModelProvider,
        settings: SourceSettings | None = None,
        pools: Pools | None = None,
    ) -> None:
        settings = settings or SourceSettings()
        self.pools = pools or Pools()
        self._formats = {
            DatasetFormat.GLU_PARQUET: GluParquetFormat(models, settings, self.pools),
            DatasetFormat.TDB_JSON: TdbJsonFormat(settings, self.pools),
        }
        self._sources: dict[tuple, RecordSource] = {}
        self._lock = threading.Lock()

    @property
    def example_text(self):
        """The corpora and tokenizers GLU records read their examples' text with
        (text.example_text.ExampleText), shared with the searches."""
        return self._formats[DatasetFormat.GLU_PARQUET].text

    def get(self, metadata: NeuronDatasetMetadata) -> RecordSource:
        key = (metadata.key, metadata)
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                source = self._sources[key] = self._formats[metadata.format].source(metadata)
            return source

    async def close(self) -> None:
        for records in self._formats.values():
            await records.close()
