"""Parsed neuron-explainer records by (dataset, layer, neuron), fetched once and kept in an LRU.

A record is read and parsed once however many requests ask for it at the same time; failures are
not cached, so a source that was down is asked again next time.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Protocol

from activations.io.lru import LruCache
from activations.records.sizes import deep_bytes
from activations.records.tdb_json import NeuronRecord, parse_neuron_record
from registry.paths import join_path

DEFAULT_CACHE_SIZE = 512
_PARSE_IN_THREAD_BYTES = 256 * 1024  # larger records are parsed off the event loop


class BytesReader(Protocol):
    """What the store reads with: activations.io.storage.SourceReader, or a fake."""

    async def read_bytes(self, path: str) -> bytes: ...


def _index(name: str, value: int) -> int:
    """A non-negative int (numpy ints too); bools and strings are refused."""
    try:
        if isinstance(value, bool):
            raise TypeError
        index = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if index < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {index}")
    return index


def record_path(dataset_path: str, layer: int, neuron: int) -> str:
    """Where neuron-explainer keeps a record: {dataset_path}/{layer}/{neuron}.json."""
    layer, neuron = _index("layer", layer), _index("neuron", neuron)
    return join_path(dataset_path, str(layer), f"{neuron}.json")


class TdbRecordStore:
    """Reads `tdb_json` records through a reader and caches the parsed ones (LRU, `cache_size`
    records; 0 turns caching off but still shares concurrent fetches)."""

    def __init__(
        self,
        reader: BytesReader,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int | None = None,
    ):
        if cache_size < 0:
            raise ValueError(f"cache_size must be ≥ 0, got {cache_size}")
        self.reader = reader
        self.cache_size = cache_size
        self._cache: LruCache[tuple[str, bool], NeuronRecord] = LruCache(
            cache_size, max_weight=cache_bytes
        )
        self._pending: dict[tuple[str, bool], asyncio.Future[NeuronRecord]] = {}

    async def get(
        self, dataset_path: str, layer: int, neuron: int, *, token_pairs: bool = False
    ) -> NeuronRecord:
        """The record of one neuron; `token_pairs` for datasets by token pair (see
        activations.tdb_records.TOKEN_PAIR_DSTS). Raises ValueError for a bad layer or neuron,
        registry.storage's errors when reading fails and MalformedRecordError for a bad file."""
        key = (record_path(dataset_path, layer, neuron), token_pairs)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is None:  # else join the fetch under way
            pending = asyncio.ensure_future(self._load(*key))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        # shield: one caller giving up (a closed connection) must not cancel the others' fetch.
        return await asyncio.shield(pending)

    async def _load(self, path: str, token_pairs: bool) -> NeuronRecord:
        data = await self.reader.read_bytes(path)
        if len(data) > _PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(  # CPU work: it cannot hang
                parse_neuron_record, data, token_pairs=token_pairs, source=path
            )
        return parse_neuron_record(data, token_pairs=token_pairs, source=path)

    def _settle(self, key: tuple[str, bool], done: asyncio.Future[NeuronRecord]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if done.cancelled():
            return
        if done.exception() is None:  # also marks the error as retrieved
            record = done.result()
            self._cache.put(key, record, weight=deep_bytes(record))

    def clear(self) -> None:
        """Forget every cached record (fetches under way still finish and are cached)."""
        self._cache.clear()
