"""Search over explanation texts: the explanations stored for every registered dataset's
neurons (our local explanation datasets), ranked by how many of the query's words they hold
(then by the explanation's score), each linking to its neuron's page."""

from __future__ import annotations

import re
from pathlib import Path

from activations.explanations.results import loads
from activations.explanations.store import local_files
from registry.explanations import ExplanationDatasetMetadata
from registry.metadata import CamelModel

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class ExplanationHit(CamelModel):
    short_name: str
    dst: str
    layer: int
    neuron: int
    quadrant: str | None
    explanation: str
    score: float | None
    match: float
    """The share of the query's words the explanation holds (1: all of them)."""
    page: str


class ExplanationSearchResult(CamelModel):
    query: str
    hits: list[ExplanationHit]
    searched: int
    """Explanations read."""


class ExplanationIndex:
    """Each file's explanations, read again only when the file changes."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[float, list[tuple[str, float | None]]]] = {}

    def _explanations(self, file: Path) -> list[tuple[str, float | None]]:
        mtime = file.stat().st_mtime
        kept = self._files.get(file)
        if kept is None or kept[0] != mtime:
            try:
                results = loads(file.read_bytes())
                found = [
                    (s.explanation, s.get_preferred_score()) for s in results.scored_explanations
                ]
            except (OSError, ValueError):
                found = []
            kept = self._files[file] = (mtime, found)
        return kept[1]

    def search(
        self, query: str, datasets: list[ExplanationDatasetMetadata], top: int = 20
    ) -> ExplanationSearchResult:
        wanted = set(words(query))
        hits, searched = [], 0
        for dataset in datasets:
            for layer, neuron, file in local_files(dataset.explanation_dataset_path):
                for text, score in self._explanations(file):
                    searched += 1
                    held = wanted & set(words(text))
                    if not held and query.lower() not in text.lower():
                        continue
                    dst = dataset.derived_scalar_type.value
                    hits.append(
                        ExplanationHit(
                            short_name=dataset.neuron_dataset,
                            dst=dst,
                            layer=layer,
                            neuron=neuron,
                            quadrant=dataset.quadrant,
                            explanation=text,
                            score=score,
                            match=len(held) / max(1, len(wanted)) if wanted else 1.0,
                            page=f"/neuron/{dataset.neuron_dataset}/{dst}/{layer}/{neuron}",
                        )
                    )
        hits.sort(key=lambda h: (-h.match, -(h.score if h.score is not None else -2.0)))
        return ExplanationSearchResult(query=query, hits=hits[:top], searched=searched)
