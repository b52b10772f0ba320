"""Example text: each top example's tokens around its max, from the corpus its document index
points into, and on request the neuron's values on them, from the model.

Two steps, so that the blocking work runs where it belongs: `windows` tokenizes (a CPU pool),
the values come from the model's own worker thread, and `apply` puts them in place. Each
document is tokenized and run once, however many examples it holds.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from activations.corpus import Corpus, load_corpus
from activations.models.tokens import Tokens
from activations.records.models import GluExample, GluNeuronRecord
from registry.metadata import NeuronDatasetMetadata
from registry.vocabulary import REFACTOR_FLIPPED_HOOKS

RETRY_CORPUS_AFTER_S = 30.0


@dataclass
class Windows:
    """The documents to run (token ids up to the last window's end) and each example's slice."""

    documents: list[list[int]] = field(default_factory=list)
    uses: list[tuple[GluExample, int, int, int]] = field(default_factory=list)
    """(example, index into documents, window start, window stop)."""
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
        uses = [(e, new_index[at], a, b) for e, at, a, b in self.uses if at in new_index]
        self.left_out = len(self.uses) - len(uses)
        self.uses = uses


class ExampleText:
    """Corpora loaded once per (model, corpus, max tokens), and the model that reads them."""

    def __init__(self, models: Any) -> None:
        self.models = models
        self._corpora: dict[tuple, Corpus] = {}
        self._failed: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def corpus(self, metadata: NeuronDatasetMetadata, file_metadata: dict) -> Corpus:
        """The documents the record's indices point into, loaded once; a failure is remembered
        for RETRY_CORPUS_AFTER_S seconds (a file moved back is seen after that)."""
        name = file_metadata.get("corpus") or metadata.corpus
        if not name or not metadata.model:
            raise LookupError("the dataset names no corpus and model")
        spec, _, tokens = name.partition("@")
        max_tokens = int(tokens or file_metadata.get("max_tokens") or 1024)
        key = (metadata.model, spec, max_tokens)
        with self._lock:
            held, failed = self._corpora.get(key), self._failed.get(key)
        if held is not None:
            return held
        if failed is not None and time.monotonic() - failed[1] < RETRY_CORPUS_AFTER_S:
            wait = RETRY_CORPUS_AFTER_S - (time.monotonic() - failed[1])
            raise LookupError(f"{failed[0]} (tried again in {wait:.0f} s)")
        try:
            runner = self.models.get(metadata.model)
            held = load_corpus(spec, runner.tokenizer, max_tokens)
        except Exception as error:  # offline hub, missing file: remember why, for a while
            why = f"corpus {name!r} is not available here: {error}"
            with self._lock:
                self._failed[key] = (why, time.monotonic())
            raise LookupError(why) from None
        with self._lock:
            self._corpora[key] = held
            self._failed.pop(key, None)
        return held

    def windows(
        self,
        record: GluNeuronRecord,
        metadata: NeuronDatasetMetadata,
        file_metadata: dict,
        context: int,
        max_tokens_run: int = 32_768,
    ) -> Windows:
        """Fill in each example's tokens around its max; raises LookupError saying why not."""
        corpus = self.corpus(metadata, file_metadata)
        runner = self.models.get(metadata.model)
        tokens = runner.tokens
        if "bos_token" in file_metadata:  # positions count from the BOS rule of the collation
            tokens = Tokens(runner.tokenizer, file_metadata["bos_token"])
        max_tokens = int(file_metadata.get("max_tokens") or runner.max_tokens)
        found = Windows()
        slot: dict[int, int] = {}  # document index -> index into found.documents
        ids_of: dict[int, list[int]] = {}
        for quadrant in record.quadrants:
            for examples in quadrant.examples.values():
                for example in examples:
                    doc = example.document_index
                    if example.position is None or doc >= len(corpus):
                        continue
                    if doc not in ids_of:
                        ids_of[doc] = tokens.encode(corpus.documents[doc], max_tokens)
                    ids = ids_of[doc]
                    start = max(0, example.position - context)
                    stop = min(len(ids), example.position + context + 1)
                    example.window_start = start
                    example.tokens = tokens.decode_each(ids[start:stop])
                    if doc not in slot:
                        slot[doc] = len(found.documents)
                        found.documents.append([])
                    prefix = found.documents[slot[doc]]
                    if stop > len(prefix):
                        found.documents[slot[doc]] = ids[:stop]
                    found.uses.append((example, slot[doc], start, stop))
        found.limit(max_tokens_run)
        return found

    def random_documents(
        self,
        metadata: NeuronDatasetMetadata,
        file_metadata: dict,
        seed: int,
        count: int,
        length: int,
    ) -> tuple[list[list[str]], list[list[int]]]:
        """The opening `length` tokens of `count` documents drawn at random (the same draw for
        the same seed), as token strings and ids; raises LookupError saying why not."""
        corpus = self.corpus(metadata, file_metadata)
        tokens = self.models.get(metadata.model).tokens
        picked = random.Random(seed).sample(range(len(corpus)), min(count, len(corpus)))
        ids = [tokens.encode(corpus.documents[i], length) for i in sorted(picked)]
        return [tokens.decode_each(one) for one in ids], ids

    @staticmethod
    def apply(windows: Windows, values: list[dict[str, list[float]]]) -> None:
        """Each example's values on its window (values by document, as the file records
        them: see `refactored`)."""
        for example, at, start, stop in windows.uses:
            example.activations = {h: v[start:stop] for h, v in values[at].items()}


def refactored(values: dict[str, list[float]], sign: float) -> dict[str, list[float]]:
    """A neuron's values as a file collated with --refactor-glu records them: the sites it
    flips, times the neuron's sign (-1 where its gate and in weights point apart)."""
    if sign >= 0:
        return values
    return {h: [-x for x in v] if h in REFACTOR_FLIPPED_HOOKS else v for h, v in values.items()}
