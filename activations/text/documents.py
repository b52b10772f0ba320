"""Documents by index: document i of the corpus a record's examples point into.

A corpus on the Hub (`hf:owner/name`, a `datasets` repo of Parquet shards, e.g.
`hf:sjgerstner/dolma-small`) is never downloaded: the shards' footers are read once (side by
side), then a document costs the chunk of one column in its row group, fetched by a ranged
request together with the other documents of that file, and kept on disk (byte_cache.py) with a
bounded total. Where the corpus stores the token ids its dataset was made from (`input_ids`, as
dolma-small does), those are the document: no tokenizer can disagree with them. Other corpora
(the embedded Shakespeare, local files) are loaded whole (activations.corpus) and indexed.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from activations.corpus import Corpus
from activations.io.byte_cache import ByteCache
from activations.io.dataset_files import dataset_files
from activations.io.lru import LruCache
from activations.io.parquet_parts import ParquetPart
from activations.pools import side_by_side
from activations.records.sizes import deep_bytes

IDS_COLUMN = "input_ids"
SPLIT = "train"


@dataclass(frozen=True)
class Document:
    text: str | None = None
    ids: tuple[int, ...] | None = None
    """The token ids the dataset was made from, where the corpus keeps them."""


class DocumentSource(Protocol):
    name: str

    def count(self) -> int:
        """How many documents (indices 0 to count-1)."""

    def fetch(self, indices: list[int]) -> dict[int, Document | str]:
        """Each document, or why it could not be had (a message)."""


class LoadedDocuments:
    """A corpus held in memory."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.name = corpus.name

    def count(self) -> int:
        return len(self.corpus)

    def fetch(self, indices: list[int]) -> dict[int, Document | str]:
        n = len(self.corpus)
        return {
            i: Document(text=self.corpus.documents[i])
            if 0 <= i < n
            else f"document {i} is not in corpus {self.name} ({n} documents)"
            for i in indices
        }


class HubDocuments:
    """A `datasets` corpus in Parquet shards (on the Hub, at a URL, or local), read by ranges."""

    def __init__(
        self,
        name: str,
        path: str,
        text_column: str = "text",
        timeout_s: float = 10.0,
        cached_documents: int = 4096,
        cached_bytes: int = 128 * 2**20,
    ) -> None:
        self.name = name
        self.path = path
        self.text_column = text_column
        self.timeout_s = timeout_s
        self._parts: list[ParquetPart] | None = None
        self._starts: list[int] = []
        self._column = text_column
        self._lock = threading.Lock()
        self._documents: LruCache[int, Document] = LruCache(cached_documents, cached_bytes)

    def _open(self) -> list[ParquetPart]:
        with self._lock:
            if self._parts is not None:
                return self._parts
            files = dataset_files(self.path, None, self.timeout_s, ByteCache())
            split = [f for f in files if f.name.rsplit("/", 1)[-1].startswith(f"{SPLIT}-")]
            files = split or files  # the train split where the repo has several
            outcomes = side_by_side([lambda f=f: ParquetPart(f) for f in files])
            parts = [part for part, error in outcomes if error is None]
            failed = [error for _, error in outcomes if error is not None]
            if failed:
                for part in parts:
                    part.close()
                raise failed[0]
            names = parts[0].schema.names if parts else []
            if IDS_COLUMN in names:
                self._column = IDS_COLUMN
            elif self.text_column not in names:
                raise LookupError(
                    f"corpus {self.name} has no column {self.text_column!r} or {IDS_COLUMN!r}; "
                    f"its columns: {', '.join(names)}"
                )
            starts, total = [], 0
            for part in parts:
                starts.append(total)
                total += part.num_rows
            self._starts, self._parts = starts + [total], parts
            return parts

    def count(self) -> int:
        self._open()
        return self._starts[-1]

    def _locate(self, index: int) -> tuple[int, int, int]:
        """(part, row group, row in the group) of a document."""
        p = bisect.bisect_right(self._starts, index) - 1
        local = index - self._starts[p]
        groups = self._parts[p].group_starts
        g = bisect.bisect_right(groups, local) - 1
        return p, g, local - groups[g]

    def fetch(self, indices: list[int]) -> dict[int, Document | str]:
        parts = self._open()
        found: dict[int, Document | str] = {}
        wanted: dict[int, dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        for index in dict.fromkeys(indices):
            held = self._documents.get(index)
            if held is not None:
                found[index] = held
            elif not 0 <= index < self._starts[-1]:
                found[index] = (
                    f"document {index} is not in corpus {self.name} ({self._starts[-1]} documents)"
                )
            else:
                p, g, row = self._locate(index)
                wanted[p][g].append((index, row))

        def read_part(p: int) -> dict[int, Document]:
            part, groups = parts[p], wanted[p]
            if part.file.remote is not None:  # every group's chunk of this file in one request
                ranges = [r for g in groups for r in part.chunk_ranges(g, [self._column])]
                part.file.remote.fetch(ranges)
            out = {}
            for g, rows in groups.items():
                column = part.read_group(g, [self._column]).column(self._column)
                for index, row in rows:
                    value = column[row].as_py()
                    if self._column == IDS_COLUMN:
                        document = Document(ids=tuple(int(i) for i in value))
                    else:
                        document = Document(text=value)
                    out[index] = document
            return out

        order = list(wanted)
        outcomes = side_by_side([lambda p=p: read_part(p) for p in order])
        for p, (documents, error) in zip(order, outcomes, strict=True):
            if error is None:
                for index, document in documents.items():
                    self._documents.put(index, document, weight=deep_bytes(document))
                found.update(documents)
            else:
                why = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                for g in wanted[p].values():
                    for index, _ in g:
                        found[index] = f"document {index} could not be fetched: {why}"
        return found

    def close(self) -> None:
        with self._lock:
            parts, self._parts = self._parts or [], None
        for part in parts:
            part.close()
