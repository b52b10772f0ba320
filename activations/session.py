"""The composition root: the models, pools, record sources, searches and weight views that the
server and the Python API share, built in one place from one settings model with one set of
defaults, closed in one way. A record, a search, a weight view is the same object from HTTP and
from Python because both ask this for it.

    workbench = Workbench(SessionSettings(device="cuda"))
    record = await workbench.record(metadata, 3, 1024, RecordQuery(context=8), with_weights=True)
    await workbench.close()
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from activations.debugger.engine import Engine, engine_of, single_token
from activations.debugger.nodes import (
    NOT_FINITE,
    Node,
    input_token_scores,
    input_token_scores_of,
    output_token_scores,
    top_nodes,
    top_tokens,
    values_of,
)
from activations.debugger.passes import Ablation, Trace, Variant
from activations.debugger.scalars import Scalars
from activations.explanations.search import ExplanationIndex
from activations.explanations.service import Explanations
from activations.io import hub
from activations.io.lru import LruCache
from activations.io.parquet_parts import use_steady_memory_pool
from activations.models.live import LiveRequest, ModelRunner
from activations.models.pool import ModelPool
from activations.models.tokens import Tokens
from activations.pools import Pools
from activations.records.answers import GluNeuronRecord
from activations.records.explainer import attention_record
from activations.search.searches import Searches
from activations.sources.catalog import RecordSources
from activations.sources.source import (
    NOT_KEPT,
    Record,
    RecordQuery,
    RecordSource,
    SourceSettings,
    public_name,
)
from activations.weights.views import WeightViews
from registry.metadata import NeuronDatasetMetadata

# The composition root, what the server needs to build, run and close it, and the parts of it
# the server hands requests to (the server imports these, never the rooms they come from).
__all__ = [
    "CLOSE_WAIT_S", "SessionSettings", "Workbench",
    # the Workbench's parts, by type (the server's Services name them)
    "ModelPool", "Pools", "RecordSources", "Searches", "WeightViews", "Explanations",
    "ExplanationIndex",
    # process-wide set-up a server makes before its Workbench (decoding's memory pool), and
    # the LRU the sources keep answers in (the server keeps its answers' bytes in one too)
    "use_steady_memory_pool", "LruCache",
    # a model's runner and its live requests; a record source and its query
    "ModelRunner", "LiveRequest", "RecordSource", "RecordQuery", "Record", "NOT_KEPT",
    "public_name",
    # the debugger's engine on a runner and the pass it runs (a variant with its ablations and
    # trace; the scalars and nodes the pass gives), which the server's TDB requests become
    "engine_of", "Engine", "single_token", "Tokens", "Variant", "Ablation", "Trace", "Scalars",
    "Node", "NOT_FINITE", "top_nodes", "top_tokens", "values_of", "output_token_scores",
    "input_token_scores", "input_token_scores_of", "attention_record",
]  # fmt: skip

CLOSE_WAIT_S = 30.0


class SessionSettings(BaseModel):
    """What the models, sources and searches are built with (the server's settings add its
    own: ServerSettings extends this)."""

    device: str = "cpu"
    max_tokens_per_request: int = 1024
    """Tokens of one live text, at most (longer: refused, 413 from the server)."""
    live_queue_size: int = 64
    """Live requests waiting for a model beyond this are refused (503 from the server)."""
    micro_batch_size: int = 8
    micro_batch_wait_s: float = 0.005
    record_cache_size: int = 4096
    record_cache_mb: float = Field(256.0, ge=0)
    """Memory (MB) that each in-memory cache of answers may take: the records of each format,
    and the answers' bytes sent again; the least recently used go first beyond it."""
    decoded_cache_mb: float = Field(512.0, ge=0)
    """Memory (MB) that the decoded row groups of every GLU dataset take together (a
    46,080-neuron file's record columns are about 160 MB); the least recently used go first
    beyond it."""
    read_ahead: bool = True
    """Decode a local GLU dataset's row groups in the background once it has answered a
    record (at the lowest CPU priority, into half of decoded_cache_mb at most): the
    records of neurons not yet asked are then answered without decoding."""
    max_context: int = 64
    """Tokens shown on each side of an example's max (?context=N)."""
    max_example_tokens: int = 32_768
    """Tokens the model runs for one record's example values (?activations=true), at most."""
    upstream_timeout_s: float = 10.0
    max_model_gb: float = 4.0
    """Models up to this size (float32 weights) run for example values and to locate maxima
    the file does not store; a larger one (OLMo-7B: 28 GB) runs only when asked live."""

    @property
    def record_cache_bytes(self) -> int:
        """record_cache_mb in bytes, as the caches count them."""
        return int(self.record_cache_mb * 2**20)

    def source_settings(self) -> SourceSettings:
        return SourceSettings(
            cache_size=self.record_cache_size,
            cache_bytes=self.record_cache_bytes,
            decoded_bytes=int(self.decoded_cache_mb * 2**20),
            read_ahead=self.read_ahead,
            max_context=self.max_context,
            upstream_timeout_s=self.upstream_timeout_s,
            max_example_tokens=self.max_example_tokens,
        )


class Workbench:
    """Models (each with its one worker thread, loaded on first use), the pools of blocking
    work, a record source per dataset, the searches, the weight views and the explanations
    (explained and scored on the models' own workers, stored, searched)."""

    def __init__(self, settings: SessionSettings | None = None) -> None:
        self.settings = settings = settings or SessionSettings()
        self.models = ModelPool(
            settings.device,
            settings.max_tokens_per_request,
            queue_size=settings.live_queue_size,
            micro_batch_size=settings.micro_batch_size,
            micro_batch_wait_s=settings.micro_batch_wait_s,
            max_model_bytes=int(settings.max_model_gb * 2**30),
        )
        self.pools = Pools()
        self.sources = RecordSources(self.models, settings.source_settings(), self.pools)
        self.searches = Searches(self.models, self.sources, self.pools)
        self.weight_views = WeightViews(self.models)
        self.explanations = Explanations(self.sources, self.models)
        self.explanation_index = ExplanationIndex()

    async def record(
        self,
        metadata: NeuronDatasetMetadata,
        layer: int,
        neuron: int,
        query: RecordQuery,
        with_weights: bool = False,
    ) -> Record:
        """One neuron's record, with its weight views where asked (or a note why not)."""
        record = await self.sources.get(metadata).record(layer, neuron, query)
        if with_weights and isinstance(record, GluNeuronRecord):
            record = await self.add_weights(record)
        return record

    async def add_weights(self, record: GluNeuronRecord) -> GluNeuronRecord:
        """The record with its neuron's weight views, or a note saying why not (yet)."""
        model = record.dataset.model
        if not model:
            return record.model_copy(update={"weights_note": "the dataset names no model"})
        try:
            view = await self.pools.cpu.run(
                self.weight_views.view, model, record.layer, record.neuron
            )
        except Exception as error:  # computing, over the budget, out of the model's range
            return record.model_copy(update={"weights_note": str(error)})
        return record.model_copy(update={"weights": view})

    async def warm_up(self) -> None:
        """Make what a first hf:// read needs (the Hub's client, the HTTP clients: about 0.4 s)
        before it is asked for, in a thread; a server awaits this before listening."""
        await asyncio.to_thread(hub.warm_up)

    async def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Queued work fails; the work that runs on a model or computes a weight table is
        waited for, up to `wait_s` (a table stops after its current layer): a thread still in
        torch when the interpreter exits aborts the process. Threads are daemons, so work that
        hangs beyond that holds nothing up. The waits block the loop: it is closing, and at
        the interpreter's exit (the API's atexit) no executor takes new work."""
        deadline = time.monotonic() + wait_s  # one wait for both, not one each
        self.weight_views.close(wait_s)
        self.models.stop(max(0.0, deadline - time.monotonic()))
        await self.explanations.close()
        self.pools.shutdown()
        await self.sources.close()
