"""A GLU neuron as neuron-explainer's viewer reads a neuron: its top examples of the hook the
dataset's type names (all quadrants, strongest |value| first) as token sequences with the
neuron's values, and a random sample of the corpus's documents. What cannot be shown (no
corpus, no model) is said in the answer's `note`."""

from __future__ import annotations

from typing import Any, Protocol

from activations.io.errors import UpstreamError
from activations.records.answers import GluNeuronRecord
from activations.records.explainer import ExplainerRecord, explainer_record
from activations.sources.source import RecordQuery, public_name
from registry.metadata import NeuronDatasetMetadata

CONTEXT = 32  # tokens on each side of an example's max: sequences of up to 65 tokens
RANDOM_DOCUMENTS = 5
RANDOM_TOKENS = 64


class GluDatasetSource(Protocol):
    """What this reads of a GLU source (glu_source.GluDatasetSource): its records, example text and
    the neuron's values on token ids."""

    metadata: NeuronDatasetMetadata
    hook: str
    shared: Any

    async def record(self, layer: int, neuron: int, query: RecordQuery) -> GluNeuronRecord: ...

    async def neuron_values(
        self, record: GluNeuronRecord, id_lists: list[list[int]], hooks: list[str]
    ) -> list[dict[str, list[float]]]: ...


async def glu_explainer_record(
    source: GluDatasetSource, layer: int, neuron: int
) -> ExplainerRecord:
    record = await source.record(layer, neuron, RecordQuery(context=CONTEXT, activations=True))
    hook = source.hook
    examples = [e for q in record.quadrants for e in q.examples.get(hook, [])]
    examples.sort(key=lambda e: -abs(e.value))
    top = []
    for example in examples:
        values = (example.activations or {}).get(hook)
        if example.tokens is None or (values is None and example.position is None):
            continue  # no text, or no max known to show the value at
        if values is None:  # without the model: the recorded value at the max, 0 elsewhere
            values = [0.0] * len(example.tokens)
            values[example.position - example.window_start] = example.value
        top.append((example.tokens, values))
    notes = [record.context_note] if record.context_note else []
    if examples and not top and not notes:
        notes.append("the examples have no text to show")
    random, why_not = await random_sample(source, record, hook)
    if why_not:
        notes.append(why_not)
    return explainer_record(public_name(source.metadata), top, random, "; ".join(notes) or None)


async def random_sample(source: GluDatasetSource, record, hook: str) -> tuple[list, str | None]:
    """The openings of a few documents drawn at random, with the neuron's values."""
    text = source.shared.text
    seed = record.layer * 1_000_003 + record.neuron
    try:
        tokens, ids = await source.shared.pools.cpu.run(
            text.corpora.random_documents,
            source.metadata,
            record.file_metadata,
            seed,
            RANDOM_DOCUMENTS,
            RANDOM_TOKENS,
        )
    except LookupError as error:
        return [], f"no random sample: {error}"
    try:
        values = await source.neuron_values(record, ids, [hook])
    except UpstreamError as error:
        return [], f"no random sample: the values need the model: {error}"
    return [(t, v.get(hook, [])) for t, v in zip(tokens, values, strict=True)], None
