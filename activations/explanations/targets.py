"""A neuron's records as explanation targets. neuron-explainer / TDB records: one target, their
top and random records as they are. GLU records: one target per quadrant that has examples
(its own top examples, values multiplied by the sign of the quadrant's values so that what is
explained is positive) and one of the neuron's overall positive activations (the positive
examples of every quadrant, largest first); random documents with the neuron's values as the
random records of each, on the same orientation."""

from __future__ import annotations

from activations.explanations.errors import ExplanationError
from activations.explanations.pipeline import OVERALL, Target
from activations.records.tdb_json import ActivationRecord
from activations.sources.glu_explainer import random_sample as random_documents
from activations.sources.source import RecordQuery, RecordSource
from registry.metadata import DatasetFormat

CONTEXT = 12
"""Tokens of an example on each side of its max (sequences of up to 25 tokens): short
sequences keep a small explainer's prompts short."""


def _record(tokens: list[str], values: list[float], sign: float = 1.0) -> ActivationRecord:
    return ActivationRecord(tokens=list(tokens), activations=[sign * v for v in values])


async def neuron_targets(
    source: RecordSource, layer: int, neuron: int, context: int = CONTEXT
) -> list[Target]:
    """The overall target first, then the quadrants' (GLU)."""
    if source.metadata.format == DatasetFormat.TDB_JSON:
        record = await source.record(layer, neuron, RecordQuery())
        top = [_record(r.tokens, r.activations) for r in record.top_activations]
        random = [_record(r.tokens, r.activations) for r in record.random_sample]
        return [Target(OVERALL, top, random)]
    return await _glu_targets(source, layer, neuron, context)


async def _glu_targets(source, layer: int, neuron: int, context: int) -> list[Target]:
    hook = source.hook
    record = await source.record(layer, neuron, RecordQuery(context=context, activations=True))
    # the random documents neuron-explainer's viewer shows for the neuron (without the record
    # of wider examples that viewer record also computes: one model pass fewer)
    random, _ = await random_documents(source, record, hook)
    quadrants, overall = [], []
    for quadrant in record.quadrants:
        examples = [
            e
            for e in quadrant.examples.get(hook, [])
            if e.tokens and e.activations and hook in e.activations
        ]
        if not examples:
            continue
        sign = 1.0 if examples[0].value >= 0 else -1.0
        top = [_record(e.tokens, e.activations[hook], sign) for e in examples]
        quadrants.append(Target(quadrant.name, top, [_record(t, v, sign) for t, v in random]))
        overall += [(e.value, _record(e.tokens, e.activations[hook])) for e in examples]
    positive = [r for value, r in sorted(overall, key=lambda p: -p[0]) if value > 0]
    if not quadrants and any(q.examples.get(hook) for q in record.quadrants):
        why = record.context_note or "the examples have no text or values"
        raise ExplanationError(f"layer {layer} neuron {neuron}: cannot explain: {why}")
    return [Target(OVERALL, positive, [_record(t, v) for t, v in random]), *quadrants]
