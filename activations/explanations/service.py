"""Explanations of registered datasets' neurons, as the server, the command line and the
Python API ask for them: the explanation datasets of a neuron dataset (registered, published
and our own), a neuron's existing explanations, explaining it and scoring a text, each stored.

One computation per question: two requests to explain the same neuron (or to score the same
text) while one is under way wait for the same result. An explanation already scored is not
scored again (TDB's cache rule)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activations.explanations.backends import InProcessBackend, LocalModels
from activations.explanations.errors import ExplanationError
from activations.explanations.pipeline import (
    OVERALL,
    Backend,
    Target,
    check_active,
    top_tokens_explanation,
)
from activations.explanations.pipeline import explain as explain_target
from activations.explanations.pipeline import score as score_target
from activations.explanations.results import ScoredExplanation
from activations.explanations.store import ExplanationStore
from activations.explanations.targets import neuron_targets
from activations.sources.catalog import RecordSources
from activations.sources.source import public_name
from registry.explanations import (
    ExplainerMetadata,
    ExplanationDatasetMetadata,
    get_explainer,
    registered_explanation_datasets,
    written_explanation_datasets,
)
from registry.metadata import DatasetFormat, NeuronDatasetMetadata
from registry.vocabulary import QUADRANTS

EXAMPLES_PER_SPLIT = 5
"""Records per split, as TDB's explainer routes take them (ActivationRecordSliceParams(
n_examples_per_split=5)): 5 top records shown to the explainer, 5 top and 5 random scored."""


@dataclass
class Explained:
    """What explaining a neuron gave: per explanation dataset (the positive activations',
    each quadrant's), its scored explanations, best first."""

    dataset: str
    by_target: list[tuple[ExplanationDatasetMetadata, list[ScoredExplanation]]]
    computed: bool
    """False where they were read from the store."""
    baseline: ScoredExplanation | None = None
    """neuron-explainer's "top tokens" baseline, scored the same way (where asked; kept out
    of the store)."""


class Explanations:
    def __init__(self, sources: RecordSources, models=None, store=None) -> None:
        self.sources = sources
        self.models = models  # a ModelPool: in-process backends run on its workers
        self.store = store or ExplanationStore()
        self._local = LocalModels()
        self._pending: dict[tuple, asyncio.Future] = {}
        self.backend_override: Callable[[ExplainerMetadata], Backend] | None = None

    # -- backends ------------------------------------------------------------------------------

    def backend(self, explainer: str | None = None) -> Backend:
        metadata = get_explainer(explainer)
        if self.backend_override is not None:
            return self.backend_override(metadata)
        if metadata.kind == "openai":
            from activations.explanations.openai_backend import OpenAIBackend

            return OpenAIBackend(metadata)
        model, dtype = metadata.model, metadata.dtype

        async def run(work):
            def on_worker(runner):
                lm = self._local.of((model, dtype), runner.model, runner.tokenizer, model, dtype)
                return work(lm)

            return await self.models.run(model, on_worker)

        return InProcessBackend(model, run)

    # -- datasets ------------------------------------------------------------------------------

    def datasets(
        self, metadata: NeuronDatasetMetadata, root: str | Path | None = None
    ) -> list[ExplanationDatasetMetadata]:
        """Registered explanation datasets first, then ours (a GLU dataset's quadrants too)."""
        quadrants = QUADRANTS if metadata.format == DatasetFormat.GLU_PARQUET else ()
        ours = written_explanation_datasets(
            metadata.short_name, metadata.derived_scalar_type, root, quadrants
        )
        registered = registered_explanation_datasets(
            metadata.short_name, metadata.derived_scalar_type
        )
        return registered + [d for d in ours if d not in registered]

    def written(
        self, metadata: NeuronDatasetMetadata, quadrant: str | None, root=None
    ) -> ExplanationDatasetMetadata:
        quadrants = () if quadrant is None else (quadrant,)
        ours = written_explanation_datasets(
            metadata.short_name, metadata.derived_scalar_type, root, quadrants
        )
        return ours[-1]

    async def existing(
        self,
        datasets: list[ExplanationDatasetMetadata],
        layer: int,
        neuron: int,
    ) -> list[tuple[ExplanationDatasetMetadata, ScoredExplanation]]:
        """Every scored explanation of the neuron in these explanation datasets, in order."""
        found = await asyncio.gather(
            *(self.store.read(d.explanation_dataset_path, layer, neuron) for d in datasets)
        )
        return [
            (dataset, scored)
            for dataset, results in zip(datasets, found, strict=True)
            if results is not None
            for scored in results.scored_explanations
        ]

    # -- explain and score ---------------------------------------------------------------------

    async def _once(self, key: tuple, compute: Callable[[], Awaitable[Any]]) -> Any:
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(compute())
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def targets(self, metadata: NeuronDatasetMetadata, layer: int, neuron: int):
        return await neuron_targets(self.sources.get(metadata), layer, neuron)

    async def explain(
        self,
        metadata: NeuronDatasetMetadata,
        layer: int,
        neuron: int,
        explainer: str | None = None,
        candidates: int = 3,
        root: str | Path | None = None,
        again: bool = False,
        baseline: bool = False,
    ) -> Explained:
        """Explain a neuron: each target's candidates scored, all stored. Where explanations
        of its positive activations are stored already, they are answered (unless `again`)."""
        if not again and not baseline:
            overall = self.written(metadata, OVERALL, root)
            stored = await self.store.read(overall.explanation_dataset_path, layer, neuron)
            if stored is not None and stored.scored_explanations:
                return await self._stored(metadata, layer, neuron, root)
        key = ("explain", metadata.key, metadata, layer, neuron, explainer, str(root), again)
        key += (baseline,)
        return await self._once(
            key,
            lambda: self._explain(metadata, layer, neuron, explainer, candidates, root, baseline),
        )

    async def _stored(self, metadata, layer: int, neuron: int, root) -> Explained:
        ours = self.datasets(metadata, root)
        found = await self.existing(ours, layer, neuron)
        by_target = [
            (d, sorted([s for e, s in found if e == d], key=_rank, reverse=True)) for d in ours
        ]
        return Explained(public_name(metadata), [(d, s) for d, s in by_target if s], False)

    async def _explain(
        self, metadata, layer, neuron, explainer, candidates, root, baseline=False
    ) -> Explained:
        backend = self.backend(explainer)
        targets: list[Target] = await self.targets(metadata, layer, neuron)
        what = f"{metadata.short_name} layer {layer} neuron {neuron}"
        check_active(targets[0], what)
        by_target = []
        for target in targets:
            if not target.top or target.max_activation <= 0:
                continue
            found = await explain_target(
                backend, target, what, candidates=candidates, per_split=EXAMPLES_PER_SPLIT
            )
            by_target.append((self.written(metadata, target.quadrant, root), found))
        # the quadrants' files first, the positive activations' last: its file says the
        # neuron is done (a run stopped before it explains the neuron again)
        for dataset, found in [*by_target[1:], *by_target[:1]]:
            await self.store.add(dataset.explanation_dataset_path, layer, neuron, found)
        explained = Explained(public_name(metadata), by_target, True)
        if baseline:
            text = top_tokens_explanation(targets[0])
            explained.baseline = await score_target(
                backend, targets[0], text, per_split=EXAMPLES_PER_SPLIT
            )
        return explained

    async def score(
        self,
        metadata: NeuronDatasetMetadata,
        layer: int,
        neuron: int,
        explanation: str,
        quadrant: str | None = None,
        max_sequences: int | None = None,
        explainer: str | None = None,
        root: str | Path | None = None,
    ) -> ScoredExplanation:
        """A text's score for the neuron (or a quadrant): from the store where it was scored,
        else simulated, scored and stored."""
        text = (explanation or "").strip()
        if quadrant is not None and quadrant not in QUADRANTS:
            raise ExplanationError(f"unknown quadrant {quadrant!r}; valid: {', '.join(QUADRANTS)}")
        dataset = self.written(metadata, quadrant, root)
        path = dataset.explanation_dataset_path
        candidates = [dataset]
        if quadrant is None:  # published explanations are of the positive activations
            dst = metadata.derived_scalar_type
            candidates += registered_explanation_datasets(metadata.short_name, dst)
        for known in await self.existing(candidates, layer, neuron):
            if known[1].explanation == text:
                return known[1]
        key = ("score", metadata.key, metadata, layer, neuron, text, quadrant, explainer, path)

        async def compute() -> ScoredExplanation:
            targets = await self.targets(metadata, layer, neuron)
            target = next((t for t in targets if t.quadrant == quadrant), None)
            what = f"{metadata.short_name} layer {layer} neuron {neuron}" + (
                f" quadrant {quadrant}" if quadrant else ""
            )
            if target is None:
                raise ExplanationError(f"{what} has no examples to score on")
            check_active(target, what)
            backend = self.backend(explainer)
            scored = await score_target(backend, target, text, max_sequences, EXAMPLES_PER_SPLIT)
            await self.store.add(path, layer, neuron, [scored])
            return scored

        return await self._once(key, compute)

    async def close(self) -> None:
        await self.store.close()


def _rank(scored: ScoredExplanation) -> float:
    value = scored.get_preferred_score()
    return float("-inf") if value is None else value
