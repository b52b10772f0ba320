"""One protocol for every dataset format: what a dataset holds (its shape) and one neuron's
record. The server, the Python API and the viewer's catalog read every format through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from activations.records.answers import GluNeuronRecord, NeuronRecordResponse
from activations.records.explainer import ExplainerAttentionRecord, ExplainerRecord
from registry.metadata import CamelModel, NeuronDatasetMetadata
from registry.paths import local_path


class DatasetShape(CamelModel):
    """What a dataset holds, from its index alone (no record read)."""

    layers: list[int]
    neurons_per_layer: int
    top_k: int | None
    """Examples kept per quadrant and hook."""
    hooks: list[str]
    corpus: str | None
    """What the examples' document indices point into."""


@dataclass(frozen=True)
class RecordQuery:
    """What a record should carry beyond its summary."""

    all_hooks: bool = False
    """Top examples of every hook, not only the one the dataset's type names."""
    context: int = 0
    """Tokens of text on each side of each example's max (0: no text)."""
    activations: bool = False
    """The neuron's per-token values on that text (needs the model)."""
    kept: bool = True
    """Whether the source keeps the record for the next ask. The server keeps a plain
    record's answer as bytes instead (activation_server.answers): a record kept as models is
    hundreds of objects that the garbage collector walks again and again."""


Record = GluNeuronRecord | NeuronRecordResponse
NOT_KEPT = object()


def public_name(metadata: NeuronDatasetMetadata) -> str:
    """How answers name a dataset: its URL where it is remote (as neuron-explainer's server
    does), its short name where it is a local file (a server's paths stay its own)."""
    path = metadata.neuron_dataset_path
    return metadata.short_name if local_path(path) is not None else path


class RecordSource(Protocol):
    metadata: NeuronDatasetMetadata

    def known_shape(self) -> tuple[DatasetShape | None, str | None]:
        """The shape if known without reading anything, else None and why."""

    async def shape(self) -> DatasetShape | None:
        """The shape, opening the dataset if needed (None where the format has none)."""

    async def record(self, layer: int, neuron: int, query: RecordQuery) -> Record:
        """One neuron's record; raises the errors of activations.io.errors."""

    def version(self) -> object:
        """What its answers depend on beyond the registry entry (a local file's identity and
        times); an answer is given again as it was while this is unchanged. NOT_KEPT: answers
        are made anew each time."""

    async def explainer_record(self, layer: int, neuron: int) -> ExplainerRecord:
        """The record as neuron-explainer's viewer reads it (explainer.py)."""

    async def attention_record(self, layer: int, neuron: int) -> ExplainerAttentionRecord:
        """A record by token pair as neuron-explainer's viewer reads attention heads."""

    async def close(self) -> None: ...


class ModelProvider(Protocol):
    """Where sources get a model for example text: its tokenizer (get) and work on its own
    thread (run); activations.models.pool.ModelPool."""

    def get(self, short_name: str): ...

    def tokens(self, short_name: str):
        """Its tokenizer with its BOS rule (models.tokens.Tokens), without loading weights."""

    def why_not_run(self, short_name: str) -> str | None:
        """None where it may run for example values; else why not."""

    async def run(self, short_name: str, work, background: bool = False): ...


@dataclass(frozen=True)
class SourceSettings:
    cache_size: int = 4096
    """Records kept in memory, per format, at most."""
    cache_bytes: int = 256 * 2**20
    """Memory the records kept take, per format, at most (sizes.deep_bytes of each)."""
    decoded_bytes: int = 512 * 2**20
    """Memory the decoded row groups of every GLU dataset take together, at most."""
    read_ahead: bool = True
    """Whether a local GLU dataset's row groups are decoded in the background once it has
    answered a record, into half of decoded_bytes at most (records/read_ahead.py)."""
    max_context: int = 64
    """Tokens shown on each side of an example's max, at most."""
    upstream_timeout_s: float = 10.0
    max_example_tokens: int = 32_768
    """Tokens the model runs for one record's example values, at most (longer documents and
    more examples say so instead): bounds the time and memory of one request."""
