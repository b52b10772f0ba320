"""The corpora that records' document indices point into: each opened once per (model, corpus,
max tokens), a failure remembered for a while, a corpus edited since collation refused, and
documents read as token ids as the records were made from them (the model's tokenizer alone,
with the file's BOS rule; no weights)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from activations.corpus import HF_PREFIX, load_corpus
from activations.models.tokens import Tokens
from activations.records.file_metadata import CollationMetadata
from activations.text.documents import DocumentSource, HubDocuments, LoadedDocuments
from registry.metadata import NeuronDatasetMetadata

RETRY_CORPUS_AFTER_S = 30.0


class Corpora:
    """Corpora and tokenizers for example text and token search (`models`: where tokenizers
    come from, activations.models.pool.ModelPool)."""

    def __init__(self, models: Any, timeout_s: float = 10.0) -> None:
        self.models = models
        self.timeout_s = timeout_s
        self._corpora: dict[tuple, DocumentSource] = {}
        self._failed: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._verified: set[tuple] = set()

    def tokens(self, metadata: NeuronDatasetMetadata, file_metadata: CollationMetadata) -> Tokens:
        """The model's tokenizer with the BOS rule the file was made with; raises LookupError
        saying why not."""
        if not metadata.model:
            raise LookupError("the dataset names no model to read its documents' tokens with")
        try:
            tokens = self.models.tokens(metadata.model)
        except LookupError:
            raise
        except Exception as error:  # an unknown model: the registry's message
            raise LookupError(str(error)) from None
        if file_metadata.says("bos_token"):
            return Tokens(tokens.tokenizer, file_metadata.bos_token)
        return tokens

    def corpus(
        self, metadata: NeuronDatasetMetadata, file_metadata: CollationMetadata
    ) -> tuple[DocumentSource, int]:
        """The documents the record's indices point into, and the tokens kept per document;
        opened once, and a failure remembered for RETRY_CORPUS_AFTER_S seconds."""
        name = file_metadata.corpus or metadata.corpus
        if not name or not metadata.model:
            raise LookupError("the dataset names no corpus and model")
        spec, _, tokens = name.partition("@")
        max_tokens = int(tokens or file_metadata.max_tokens or 1024)
        key = (metadata.model, spec, max_tokens)
        with self._lock:
            held, failed = self._corpora.get(key), self._failed.get(key)
        if held is not None:
            return held, max_tokens
        if failed is not None and time.monotonic() - failed[1] < RETRY_CORPUS_AFTER_S:
            wait = RETRY_CORPUS_AFTER_S - (time.monotonic() - failed[1])
            raise LookupError(f"{failed[0]} (tried again in {wait:.0f} s)")
        try:
            if spec.startswith(HF_PREFIX):
                repo = spec[len(HF_PREFIX) :]
                held = HubDocuments(spec, f"hf://datasets/{repo}", timeout_s=self.timeout_s)
            else:
                tokenizer = self.tokens(metadata, file_metadata).tokenizer
                held = LoadedDocuments(load_corpus(spec, tokenizer, max_tokens))
        except Exception as error:  # a missing file, no tokenizer: remember why, for a while
            why = f"corpus {name!r} is not available here: {error}"
            with self._lock:
                self._failed[key] = (why, time.monotonic())
            raise LookupError(why) from None
        with self._lock:
            self._corpora[key] = held
            self._failed.pop(key, None)
        return held, max_tokens

    def check_fingerprint(self, source: DocumentSource, file_metadata: CollationMetadata) -> None:
        """Refuse the text of a corpus edited since the file was collated (its recorded hash
        of each document range differs): it would not be the text the records were made of."""
        recorded = file_metadata.corpus_sha256
        if recorded is None or not isinstance(source, LoadedDocuments):
            return  # older files, and Hub corpora (read by the revision they are at)
        for span, digest in recorded.items():
            key = (id(source), span, digest)
            if key in self._verified:
                continue
            start, stop = (int(x) for x in span.split("-"))
            if source.corpus.fingerprint(start, stop) != digest:
                raise LookupError(
                    f"corpus {source.name} has changed since this file was collated (documents "
                    f"{start}-{stop} differ): its text is not the text the records were made "
                    "of; restore the corpus or collate again"
                )
            self._verified.add(key)

    def is_remote(self, metadata: NeuronDatasetMetadata, file_metadata: CollationMetadata) -> bool:
        name = file_metadata.corpus or metadata.corpus or ""
        return name.startswith(HF_PREFIX)

    def document_ids(
        self, metadata: NeuronDatasetMetadata, file_metadata: CollationMetadata, indices: list[int]
    ) -> dict[int, list[int] | str]:
        """Documents by index as the records were made from them: their token ids, or why
        not; raises LookupError where no document can be had (no corpus, no tokenizer)."""
        return self.document_ids_from(metadata, file_metadata, indices)[0]

    def document_ids_from(
        self, metadata: NeuronDatasetMetadata, file_metadata: CollationMetadata, indices: list[int]
    ) -> tuple[dict[int, list[int] | str], DocumentSource]:
        """document_ids, and the source they came from."""
        source, max_tokens = self.corpus(metadata, file_metadata)
        self.check_fingerprint(source, file_metadata)
        tokens = self.tokens(metadata, file_metadata)
        ids: dict[int, list[int] | str] = {}
        for index, document in source.fetch(indices).items():
            if isinstance(document, str):
                ids[index] = document
            elif document.ids is not None:  # the very tokens the dataset was made from
                ids[index] = list(document.ids)
            else:
                ids[index] = tokens.encode(document.text, max_tokens)
        return ids, source

    def random_documents(
        self,
        metadata: NeuronDatasetMetadata,
        file_metadata: CollationMetadata,
        seed: int,
        count: int,
        length: int,
    ) -> tuple[list[list[str]], list[list[int]]]:
        """The opening `length` tokens of `count` documents drawn at random (the same draw for
        the same seed), as token strings and ids; raises LookupError saying why not."""
        source, _ = self.corpus(metadata, file_metadata)
        self.check_fingerprint(source, file_metadata)
        tokens = self.tokens(metadata, file_metadata)
        n = source.count()
        picked = sorted(random.Random(seed).sample(range(n), min(count, n)))
        ids = []
        for document in source.fetch(picked).values():
            if isinstance(document, str):
                continue
            ids.append(
                list(document.ids[:length])
                if document.ids is not None
                else tokens.encode(document.text, length)
            )
        return [tokens.decode_each(one) for one in ids], ids
