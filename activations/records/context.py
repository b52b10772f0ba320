"""Example text: each top example's tokens around its max, from the corpus its document index
points into, and on request the neuron's values on them, from the model."""

from __future__ import annotations

import threading
from typing import Any

from activations.corpus import Corpus, load_corpus
from activations.records.models import GluNeuronRecord
from registry.metadata import NeuronDatasetMetadata
from registry.vocabulary import GLU_HOOKS, REFACTOR_FLIPPED_HOOKS


class ExampleText:
    """Corpora loaded once per (model, corpus, max tokens), and the model that reads them."""

    def __init__(self, models: Any) -> None:
        self.models = models
        self._corpora: dict[tuple, Corpus | str] = {}
        self._lock = threading.Lock()

    def corpus(self, metadata: NeuronDatasetMetadata, file_metadata: dict) -> Corpus:
        """The documents the record's indices point into, loaded once (or the reason not)."""
        name = file_metadata.get("corpus") or metadata.corpus
        if not name or not metadata.model:
            raise LookupError("the dataset names no corpus and model")
        spec, _, tokens = name.partition("@")
        max_tokens = int(tokens or file_metadata.get("max_tokens") or 1024)
        key = (metadata.model, spec, max_tokens)
        with self._lock:
            held = self._corpora.get(key)
        if held is None:
            try:
                runner = self.models.get(metadata.model)
                held = load_corpus(spec, runner.tokenizer, max_tokens)
            except Exception as error:  # offline hub, missing file: remember why
                held = f"corpus {name!r} is not available here: {error}"
            with self._lock:
                self._corpora[key] = held
        if isinstance(held, str):
            raise LookupError(held)
        return held

    def add(
        self,
        record: GluNeuronRecord,
        metadata: NeuronDatasetMetadata,
        file_metadata: dict,
        context: int,
        activations: bool,
    ) -> str | None:
        """Fill in each example's tokens (and values); returns why not, where it cannot."""
        try:
            corpus = self.corpus(metadata, file_metadata)
        except LookupError as error:
            return str(error)
        runner = self.models.get(metadata.model)
        tokenizer = runner.tokenizer
        max_tokens = int(file_metadata.get("max_tokens") or runner.max_tokens)
        wanted = []  # (example, ids cut after the window)
        for quadrant in record.quadrants:
            for examples in quadrant.examples.values():
                for example in examples:
                    if example.position is None or example.document_index >= len(corpus):
                        continue
                    text = corpus.documents[example.document_index]
                    ids = tokenizer(text, truncation=True, max_length=max_tokens).input_ids
                    start = max(0, example.position - context)
                    stop = min(len(ids), example.position + context + 1)
                    example.window_start = start
                    example.tokens = [tokenizer.decode([i]) for i in ids[start:stop]]
                    wanted.append((example, ids[:stop], start))
        if activations and wanted:
            values = runner.neuron_values(
                [ids for _, ids, _ in wanted], record.layer, record.neuron, list(GLU_HOOKS)
            )
            # a refactored file recorded the flipped sites with this neuron's sign flipped
            sign = 1.0
            if file_metadata.get("refactor_glu"):
                sign = runner.refactor_sign(record.layer, record.neuron)
            flipped = REFACTOR_FLIPPED_HOOKS if sign < 0 else frozenset()
            for (example, _, start), by_hook in zip(wanted, values, strict=True):
                example.activations = {
                    h: [-x for x in v[start:]] if h in flipped else v[start:]
                    for h, v in by_hook.items()
                }
        return None
