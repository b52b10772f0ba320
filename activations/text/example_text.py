"""Example text: each top example's tokens around its max, from the document its index points to,
and on request the neuron's values on them.

Three steps, so that the blocking work runs where it belongs: `documents` fetches the examples'
documents from the corpora (corpora.py: a Hub corpus by ranged reads, within the remote
deadline) as token ids, read with the model's tokenizer alone (no weights); `windows` cuts
each example's window (a CPU pool); the values, where wanted or where a max must be
located, come from the model's worker, and `apply` puts them in place.

Where a file stores no positions (the published OLMo files), an example's max is located by
running the model on its document (`locate`), and the position kept; until the model can run,
the example shows its document's opening and the record says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from activations.io.lru import LruCache
from activations.models.tokens import Tokens
from activations.records.answers import GluExample, GluNeuronRecord
from activations.records.file_metadata import CollationMetadata
from activations.text.corpora import Corpora
from activations.text.documents import HubDocuments
from registry.metadata import NeuronDatasetMetadata
from registry.vocabulary import (
    GATE_HOOK,
    IN_HOOK,
    REFACTOR_FLIPPED_HOOKS,
    quadrant_of,
)


@dataclass
class Fetched:
    """The examples' documents as token ids (or why not), and how to read them."""

    ids: dict[int, list[int] | str]
    tokens: Tokens
    remote: bool


@dataclass
class Windows:
    """The documents to run (token ids up to the last window's end; whole, where a max is to be
    located) and each example's window."""

    documents: list[list[int]] = field(default_factory=list)
    uses: list[tuple[GluExample, str, str, int, int, int]] = field(default_factory=list)
    """(example, quadrant, hook, index into documents, window start, window stop)."""
    unlocated: int = 0
    """Examples whose max is not known: they show their document's opening."""
    left_out: int = 0
    """Examples whose values are not computed: over the token budget."""

    def limit(self, max_tokens: int) -> None:
        """Keep the documents (shortest first) that fit in max_tokens; examples of the others
        keep their text but get no values."""
        order = sorted(range(len(self.documents)), key=lambda i: len(self.documents[i]))
        kept, total = set(), 0
        for i in order:
            if total + len(self.documents[i]) > max_tokens:
                break
            kept.add(i)
            total += len(self.documents[i])
        if len(kept) == len(self.documents):
            return
        new_index = {old: new for new, old in enumerate(sorted(kept))}
        self.documents = [self.documents[i] for i in sorted(kept)]
        uses = [
            (e, q, h, new_index[at], a, b) for e, q, h, at, a, b in self.uses if at in new_index
        ]
        self.left_out = len(self.uses) - len(uses)
        self.uses = uses


def _examples(record: GluNeuronRecord):
    for quadrant in record.quadrants:
        for hook, examples in quadrant.examples.items():
            for example in examples:
                yield quadrant.name, hook, example


class ExampleText:
    """Each example's window of text and values: its document from `corpora`, its max where
    the file stores none located once and kept."""

    def __init__(self, corpora: Corpora) -> None:
        self.corpora = corpora
        self.located: LruCache[tuple, int] = LruCache(65_536)

    def documents(
        self,
        record: GluNeuronRecord,
        metadata: NeuronDatasetMetadata,
        file_metadata: CollationMetadata,
    ) -> Fetched:
        """The token ids of every example's document (or why not); raises LookupError where no
        document can be had (no corpus, no tokenizer)."""
        wanted = sorted({e.document_index for _, _, e in _examples(record)})
        ids, source = self.corpora.document_ids_from(metadata, file_metadata, wanted)
        tokens = self.corpora.tokens(metadata, file_metadata)
        return Fetched(ids, tokens, isinstance(source, HubDocuments))

    def located_key(self, metadata: NeuronDatasetMetadata, record, doc: int, q: str, h: str):
        path, revision = metadata.neuron_dataset_path, metadata.revision
        return (path, revision, record.layer, record.neuron, doc, q, h)

    def windows(
        self,
        record: GluNeuronRecord,
        metadata: NeuronDatasetMetadata,
        fetched: Fetched,
        context: int,
        max_tokens_run: int = 32_768,
    ) -> Windows:
        """Fill in each example's tokens around its max (recorded or located; else its
        document's opening); an example whose document could not be had says why."""
        found = Windows()
        slot: dict[int, int] = {}  # document index -> index into found.documents
        for q, h, example in _examples(record):
            doc = example.document_index
            ids = fetched.ids.get(doc)
            if ids is None or isinstance(ids, str):
                example.note = ids or f"document {doc} is not in the corpus"
                continue
            if example.position is None:
                example.position = self.located.get(self.located_key(metadata, record, doc, q, h))
            if example.position is None:
                start, stop, whole = 0, min(len(ids), 2 * context + 1), True
                found.unlocated += 1
            else:
                start = max(0, example.position - context)
                stop, whole = min(len(ids), example.position + context + 1), False
            example.window_start = start
            example.tokens = fetched.tokens.decode_each(ids[start:stop])
            if doc not in slot:
                slot[doc] = len(found.documents)
                found.documents.append([])
            need = len(ids) if whole else stop
            if need > len(found.documents[slot[doc]]):
                found.documents[slot[doc]] = ids[:need]
            found.uses.append((example, q, h, slot[doc], start, stop))
        found.limit(max_tokens_run)
        return found

    def locate(
        self,
        record: GluNeuronRecord,
        metadata: NeuronDatasetMetadata,
        windows: Windows,
        values: list[dict[str, list[float]]],
        fetched: Fetched,
        context: int,
    ) -> int:
        """Each unlocated example's max: the token of its quadrant with the largest |value| of
        its hook in the neuron's values on its whole document (as the file records them);
        kept, and its window moved there. Returns how many were located."""
        done = 0
        uses = []
        for example, q, h, at, start, stop in windows.uses:
            if example.position is None and h in values[at]:
                gates, ins, own = values[at][GATE_HOOK], values[at][IN_HOOK], values[at][h]
                inside = [t for t in range(len(own)) if quadrant_of(gates[t], ins[t]) == q]
                if inside:
                    best = max(inside, key=lambda t: abs(own[t]))
                    key = self.located_key(metadata, record, example.document_index, q, h)
                    self.located.put(key, best)
                    example.position = best
                    ids = windows.documents[at]
                    start = max(0, best - context)
                    stop = min(len(ids), best + context + 1)
                    example.window_start = start
                    example.tokens = fetched.tokens.decode_each(ids[start:stop])
                    done += 1
            uses.append((example, q, h, at, start, stop))
        windows.uses = uses
        windows.unlocated -= done
        return done

    @staticmethod
    def apply(windows: Windows, values: list[dict[str, list[float]]]) -> None:
        """Each example's values on its window (values by document, as the file records
        them: see `refactored`)."""
        for example, _, _, at, start, stop in windows.uses:
            example.activations = {h: v[start:stop] for h, v in values[at].items()}


def refactored(values: dict[str, list[float]], sign: float) -> dict[str, list[float]]:
    """A neuron's values as a file collated with --refactor-glu records them: the sites it
    flips, times the neuron's sign (-1 where its gate and in weights point apart)."""
    if sign >= 0:
        return values
    return {h: [-x for x in v] if h in REFACTOR_FLIPPED_HOOKS else v for h, v in values.items()}
