"""The Python API: a dataset's records with their text, and both searches, in a notebook or a
script, without a server. It answers with the very models the server returns (pydantic;
`.model_dump()` for plain data), read through the same sources, models and searches.

    from activations import api

    olmo = api.open_dataset("smollm2-135m", "mlp_post_act")
    record = olmo.record(3, 1024, context=8)          # GluNeuronRecord, examples with tokens
    olmo.search_token(" king")                         # neurons whose top examples peak on it
    api.search_prompt("smollm2-135m", "To be, or not to be", token_index=-1)

Calls block until answered. Their async work runs on a loop of the API's own (a daemon
thread), so they work alike in a script and in a notebook, whose loop is already running.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from activations.collate.progress import progress_path, read_progress
from activations.collate.registration import register_file
from activations.debugger.attribute import AttributionResult
from activations.debugger.intervene import InterventionResult
from activations.debugger.service import run_attribution, run_intervention
from activations.explanations.pipeline import MAX_EXPLANATION_CHARS
from activations.explanations.search import ExplanationSearchResult
from activations.explanations.views import (
    ExplanationDatasetView,
    ScoredExplanationView,
    SimulatedSequence,
    neuron_views,
    sequences_of,
)
from activations.explanations.views import neuron_views as _explanation_views
from activations.records.answers import GluNeuronRecord, NeuronRecordResponse
from activations.records.explainer import (
    ExplainerAttentionRecord,
    ExplainerRecord,
    TokenAndAttentionScalars,
)
from activations.search.answers import PromptSearchResult, TokenSearchResult
from activations.session import SessionSettings, Workbench
from activations.sources.source import DatasetShape, Record, RecordQuery
from activations.weights.answers import ClassCounts, NeuronWeightView
from registry import get_neuron_dataset_metadata_by_short_name_and_dst
from registry.metadata import NeuronDatasetMetadata
from registry.plugins import load_register_modules
from registry.vocabulary import DerivedScalarType

T = TypeVar("T")

__all__ = [
    "Dataset", "Session", "SessionSettings", "open_dataset", "open_file", "register_file",
    "search_prompt", "load_registrations", "NeuronWeightView", "ClassCounts",
    "PromptSearchResult", "TokenSearchResult", "InterventionResult", "AttributionResult",
    # the answers (what the server returns too), and the calls its routes make
    "GluNeuronRecord", "NeuronRecordResponse", "ExplainerRecord", "ExplainerAttentionRecord",
    "TokenAndAttentionScalars", "DatasetShape",
    "ExplanationSearchResult", "ExplanationDatasetView", "ScoredExplanationView",
    "SimulatedSequence", "neuron_views", "sequences_of", "MAX_EXPLANATION_CHARS",
    "run_attribution", "run_intervention", "read_progress", "progress_path",
]  # fmt: skip


class Session:
    """Models (loaded on first use, kept), record sources and searches: the server's own
    (activations.session.Workbench), with a loop of their own that calls wait on; one per
    process is usually enough (the module's functions share a default one)."""

    def __init__(
        self,
        device: str | None = None,
        max_tokens: int | None = None,
        max_model_gb: float | None = None,
        settings: SessionSettings | None = None,
    ):
        settings = settings or SessionSettings()
        given = {"device": device, "max_tokens_per_request": max_tokens,
                 "max_model_gb": max_model_gb}  # fmt: skip
        settings = settings.model_copy(update={k: v for k, v in given.items() if v is not None})
        self.workbench = Workbench(settings)
        self.settings = settings
        self.models = self.workbench.models
        self.pools = self.workbench.pools
        self.sources = self.workbench.sources
        self.searches = self.workbench.searches
        self.weight_views = self.workbench.weight_views
        self.explanations = self.workbench.explanations
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the session's loop and wait for its answer."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def open_dataset(
        self, short_name: str, dst: DerivedScalarType | str = DerivedScalarType.MLP_POST_ACT
    ) -> Dataset:
        metadata = get_neuron_dataset_metadata_by_short_name_and_dst(short_name, dst)
        return Dataset(metadata, self)

    def search_prompt(
        self,
        model: str,
        text: str,
        dst: DerivedScalarType | str = DerivedScalarType.MLP_POST_ACT,
        token_index: int | None = None,
        top: int = 20,
        skip_first: bool = False,
        dataset: str | None = None,
    ) -> PromptSearchResult:
        """The `top` neurons of all the model's layers by |value| on the text, or at one of its
        tokens (negative: from the end), from one forward pass; `skip_first` leaves out the
        first token (an attention sink) of a whole-text search."""
        dst = DerivedScalarType(dst)
        work = self.searches.prompt(model, text, dst, token_index, top, skip_first, dataset)
        return self.run(work)

    def intervene(
        self,
        model: str,
        text: str,
        layer: int,
        neuron: int,
        mode: str = "zero",
        value: float = 0.0,
        quadrant: str | None = None,
        token: int | None = None,
        direct_effect_token: str | None = None,
        top: int = 5,
    ) -> InterventionResult:
        """Zero, clamp (to `value`) or scale (by `value`) a neuron on the text, at every token
        or one (`token`), optionally only where it sits in `quadrant`: per token the neuron
        before and after, the next-token distribution's top before and after and the loss
        change, and its direct effect on `direct_effect_token`'s logit (two forward passes)."""
        work = run_intervention(self.models, model, text, layer, neuron, mode, value, quadrant,
                                token, direct_effect_token, top)  # fmt: skip
        return self.run(work)

    def attribute(
        self, model: str, text: str, target: str, distractor: str | None = None, top: int = 10
    ) -> AttributionResult:
        """Each layer's top and bottom neurons and heads by act × grad of logit(target) −
        logit(distractor) at the last token, with activations and direct effects (one forward
        and one backward pass)."""
        return self.run(run_attribution(self.models, model, text, target, distractor, top))

    def weights(self, model: str, layer: int, neuron: int) -> NeuronWeightView:
        """What a neuron reads and writes, from the model's weights: at once, from its own
        vectors, until the model's table (computed once, in the background, and kept under
        $NEURONS_HOME) holds it."""
        return self.weight_views.view(model, layer, neuron)

    def classes(self, model: str) -> ClassCounts:
        """IO class and vocabulary family counts per layer (waits for the views)."""
        self.weight_views.table(model, wait=True)
        return self.weight_views.counts(model)

    def close(self) -> None:
        self.run(self.workbench.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


class Dataset:
    """One registered dataset: `(short_name, derived scalar type)`."""

    def __init__(self, metadata: NeuronDatasetMetadata, session: Session) -> None:
        self.metadata = metadata
        self.session = session

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"Dataset({m.short_name!r}, {m.derived_scalar_type.value!r}, {m.neuron_dataset_path!r})"
        )

    def shape(self) -> DatasetShape | None:
        """Layers, neurons per layer, top-k, hooks and corpus (opens the dataset)."""
        return self.session.run(self.session.sources.get(self.metadata).shape())

    def record(
        self,
        layer: int,
        neuron: int,
        context: int = 0,
        all_hooks: bool = False,
        activations: bool = False,
        weights: bool = False,
    ) -> Record:
        """One neuron's record: per quadrant its frequency, means, top examples and histogram
        (`record.histogram`: every token's, its bins in `.edges()`; docs/histogram.md); with
        `context=N` each example's tokens around its max, with `activations=True` the neuron's
        values on them (runs the model), with `weights=True` what it reads and writes (or a
        note why not yet): the server's answer, assembled in the same place."""
        query = RecordQuery(all_hooks=all_hooks, context=context, activations=activations)
        work = self.session.workbench.record(self.metadata, layer, neuron, query, weights)
        return self.session.run(work)

    def search_token(
        self, token: str | None = None, token_id: int | None = None, top: int = 20
    ) -> TokenSearchResult:
        """The neurons whose top examples (of this dataset's hook) peak on a token, given as
        text (one token of the model's tokenizer, e.g. " king") or by id: most examples first."""
        return self.session.run(self.session.searches.token(self.metadata, token, token_id, top))

    def weights(self, layer: int, neuron: int) -> NeuronWeightView:
        """What the neuron reads and writes, from its model's weights (Session.weights)."""
        if not self.metadata.model:
            raise ValueError(f"{self.metadata.short_name} names no model")
        return self.session.weights(self.metadata.model, layer, neuron)

    def push(self, repo_id: str, **options: Any) -> Any:
        """This dataset's file to a Hugging Face Hub dataset repo, in the published layout with
        its card (activations.publish.push: private=, allow_existing=, license=...)."""
        from activations.publish import push
        from registry.paths import local_path

        path = local_path(self.metadata.neuron_dataset_path)
        if path is None:
            raise ValueError(f"{self.metadata.neuron_dataset_path}: only local files are pushed")
        return push(path, repo_id, **options)

    def explanations(self, layer: int, neuron: int) -> list[ExplanationDatasetView]:
        """The neuron's stored explanations: per explanation dataset (published, ours, each
        GLU quadrant's), each with its scores and simulation, best first."""
        work = _explanation_views(self.session.explanations, self.metadata, layer, neuron)
        return self.session.run(work)

    def explain(
        self, layer: int, neuron: int, explainer: str | None = None, again: bool = False
    ) -> list[ExplanationDatasetView]:
        """Explain the neuron (neuron-explainer's method; the embedded model in process unless
        `explainer` names another), store it, and give its explanations."""
        service = self.session.explanations
        self.session.run(service.explain(self.metadata, layer, neuron, explainer, again=again))
        return self.explanations(layer, neuron)

    def score(
        self,
        layer: int,
        neuron: int,
        text: str,
        quadrant: str | None = None,
        explainer: str | None = None,
    ) -> ScoredExplanationView:
        """A text's score as an explanation of the neuron (or of a GLU quadrant), stored."""
        service = self.session.explanations
        work = service.score(self.metadata, layer, neuron, text, quadrant, explainer=explainer)
        scored = self.session.run(work)
        return ScoredExplanationView(
            explanation=scored.explanation,
            score=scored.get_preferred_score(),
            rsquared_score=scored.scored_simulation.rsquared_score,
            absolute_dev_explained_score=scored.scored_simulation.absolute_dev_explained_score,
            sequences=sequences_of(scored),
        )

    def search_prompt(
        self, text: str, token_index: int | None = None, top: int = 20, skip_first: bool = False
    ) -> PromptSearchResult:
        """Prompt search with this dataset's model and type (pages link to this dataset's)."""
        m = self.metadata
        if not m.model:
            raise ValueError(f"{m.short_name} names no model to run")
        return self.session.search_prompt(
            m.model, text, m.derived_scalar_type, token_index, top, skip_first, m.short_name
        )


_default: Session | None = None
_default_lock = threading.Lock()


def default_session() -> Session:
    global _default
    with _default_lock:
        if _default is None:
            _default = Session()
            atexit.register(_default.close)  # its threads stop before the interpreter does
        return _default


def load_registrations(*modules: str) -> list[str]:
    """Import register modules or files (as `--register`): your own models and datasets."""
    return load_register_modules(modules)


def open_file(path: str, dst: DerivedScalarType | str = DerivedScalarType.MLP_POST_ACT) -> Dataset:
    """A file `neurons collate` wrote, registered (register_file) and opened."""
    return open_dataset(register_file(path), dst)


def open_dataset(
    short_name: str,
    dst: DerivedScalarType | str = DerivedScalarType.MLP_POST_ACT,
    register: Iterable[str] = (),
) -> Dataset:
    """A registered dataset (after importing the `register` modules, if any)."""
    if register:
        load_register_modules(register)
    return default_session().open_dataset(short_name, dst)


def search_prompt(
    model: str,
    text: str,
    dst: DerivedScalarType | str = DerivedScalarType.MLP_POST_ACT,
    token_index: int | None = None,
    top: int = 20,
    skip_first: bool = False,
    dataset: str | None = None,
) -> PromptSearchResult:
    """See Session.search_prompt."""
    return default_session().search_prompt(model, text, dst, token_index, top, skip_first, dataset)
