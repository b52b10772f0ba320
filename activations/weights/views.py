"""Weight views served: a model's table is opened from $NEURONS_HOME/weights, or computed once
in a thread of its own from the loaded model's weights (no forward pass: live requests go on),
while the classes it counts answer that it is under way and how far it has come. One neuron's
view does not wait for it: until the table exists it is computed from that neuron's own vectors
(milliseconds), the very row the table will hold. A failure is said for a while
(RETRY_AFTER_S) instead of being tried again on every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from activations.io.errors import UpstreamError
from activations.models.live import LiveRequest, LiveRequestError
from activations.models.pool import ModelPool
from activations.weights.answers import ClassCounts, NeuronWeightView, RawCosines, TokenScore
from activations.weights.compute import TOP_K, Vocabulary, neuron_views, table_metadata
from activations.weights.compute import weight_views as compute_all
from activations.weights.store import METADATA_KEY, WeightTable, cache_path, write_table

RETRY_AFTER_S = 60.0
NAMES = {  # the view's lists by their stored names
    "promotes": "out_top", "suppresses": "out_bottom", "opens_gate": "gate_top",
    "closes_gate": "gate_bottom", "drives_in_up": "in_top", "drives_in_down": "in_bottom",
}  # fmt: skip


class WeightsPendingError(Exception):
    """The model's views are being computed; the message says how far it has come."""


class WeightsUnavailableError(UpstreamError):
    """The views cannot be computed here (the model is over the budget, or failed to load)."""


class _Cancelled(Exception):
    """The views were closed while a table was being computed: it stops after its layer."""


@dataclass
class _Build:
    started: float = field(default_factory=time.monotonic)
    layers_done: int = 0
    layers_total: int = 0
    failed: str | None = None
    failed_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def note(self, model: str) -> str:
        if not self.layers_done:
            return f"computing the weight views of {model} (first time only; loading its weights)"
        spent = time.monotonic() - self.started
        left = spent / self.layers_done * (self.layers_total - self.layers_done)
        return (
            f"computing the weight views of {model} (first time only): {self.layers_done} of "
            f"{self.layers_total} layers, about {left:.0f} s left"
        )


class WeightViews:
    def __init__(self, models: ModelPool) -> None:
        self.models = models
        self._tables: dict[str, WeightTable] = {}
        self._builds: dict[str, _Build] = {}
        self._vocabularies: dict[str, dict[int, str]] = {}
        self._matrices: dict[str, Vocabulary] = {}
        self._lock = threading.Lock()

    def table(self, model: str, wait: bool = False) -> WeightTable:
        """The model's table: opened, or computed (WeightsPendingError meanwhile, unless
        `wait`); WeightsUnavailableError where it cannot be."""
        runner = self.models.get(model)  # an unknown model: the registry's message
        path = cache_path(runner.metadata)
        key = str(path)
        held = self._tables.get(key)
        if held is not None:
            return held
        if path.exists():
            with self._lock:
                held = self._tables.setdefault(key, WeightTable.open(path))
            return held
        build = self._start(model, key)
        if wait:
            build.done.wait()
            if key in self._tables:
                return self._tables[key]
        if build.failed is not None:
            raise WeightsUnavailableError(build.failed)
        raise WeightsPendingError(build.note(model))

    def _start(self, model: str, key: str) -> _Build:
        with self._lock:
            build = self._builds.get(key)
            stale = (
                build is not None
                and build.failed
                and (time.monotonic() - build.failed_at > RETRY_AFTER_S)
            )
            if build is None or stale:
                build = self._builds[key] = _Build()
                why = self.models.why_not_run(model)
                if why is not None:
                    self._fail(build, f"the weight views of {model} need its weights: {why}")
                else:
                    build.thread = threading.Thread(
                        target=self._compute, args=(model, key, build), daemon=True
                    )
                    build.thread.start()
            return build

    def close(self, wait_s: float = 60.0) -> None:
        """Stop the tables being computed after their current layer, and wait (up to `wait_s`)
        for their threads: a thread still in torch when the interpreter exits aborts it."""
        with self._lock:
            builds = list(self._builds.values())
        for build in builds:
            build.cancelled.set()
        deadline = time.monotonic() + wait_s
        for build in builds:
            if build.thread is not None:
                build.thread.join(max(0.0, deadline - time.monotonic()))

    def _fail(self, build: _Build, why: str) -> None:
        build.failed, build.failed_at = why, time.monotonic()
        build.done.set()

    def _compute(self, model: str, key: str, build: _Build) -> None:
        try:
            runner = self.models.get(model)
            sites = runner.sites  # loads the model
            build.layers_total = len(sites)
            if build.cancelled.is_set():
                raise _Cancelled

            def layer_done(_: int) -> None:
                build.layers_done += 1
                if build.cancelled.is_set():
                    raise _Cancelled

            table = compute_all(
                runner.model, sites, runner.metadata.refactor_glu, on_layer=layer_done,
                vocabulary=self._matrices_of(model, key),
            )  # fmt: skip
            path = write_table(table, cache_path(runner.metadata))
            with self._lock:
                self._tables[key] = WeightTable.open(path)
                # the table answers every neuron now: its float32 copies of the vocabulary
                # matrices (GBs for a 7B model in bfloat16) are not kept
                self._matrices.pop(key, None)
            build.done.set()
        except _Cancelled:
            self._fail(build, f"the weight views of {model} were stopped: the views were closed")
        except Exception as error:  # said for a while, then tried again
            self._fail(
                build, f"the weight views of {model} failed: {type(error).__name__}: {error}"
            )

    def view(self, model: str, layer: int, neuron: int, wait: bool = False) -> NeuronWeightView:
        """From the model's table where it exists (`wait`: once it does), else from the
        neuron's own vectors at once, the model's table then being computed meanwhile."""
        runner = self.models.get(model)
        if runner.is_loaded:  # its shape is known: out of range is said at once, not 503
            try:
                runner.validate(LiveRequest(texts=(), layer=layer, neurons=(neuron,)))
            except LiveRequestError as error:
                raise LiveRequestError(f"{model}: {error}") from None
        try:
            table = self.table(model, wait)
        except WeightsPendingError:
            table = None
        try:
            if table is not None:
                found, metadata = table.neuron(layer, neuron), table.metadata
            else:
                found, metadata = self._alone(model, layer, neuron)
        except LookupError as error:
            raise LiveRequestError(str(error)) from None

        def tokens(name: str) -> list[TokenScore]:
            ids, values = found[f"{name}_ids"], found[f"{name}_values"]
            texts = self._texts(model, ids)
            return [
                TokenScore(token=text, token_id=i, value=v)
                for i, text, v in zip(ids, texts, values, strict=True)
            ]

        lists = {
            view: tokens(stored) if f"{stored}_ids" in found else []
            for view, stored in NAMES.items()
        }
        raw = RawCosines(
            cos_gate_in=_finite(found["raw_cos_gate_in"]),
            cos_gate_out=_finite(found["raw_cos_gate_out"]), cos_in_out=found["raw_cos_in_out"],
            io_class=found["raw_io_class"],
        )  # fmt: skip
        return NeuronWeightView(
            model=model, layer=layer, neuron=neuron, cos_gate_in=_finite(found["cos_gate_in"]),
            cos_gate_out=_finite(found["cos_gate_out"]), cos_in_out=found["cos_in_out"],
            io_class=found["io_class"], folded=metadata.get("folded", False), raw=raw,
            skew=found["skew"], kurtosis=found["kurtosis"], family=found["family"],
            refactored=metadata["refactored"], **lists,
        )  # fmt: skip

    def _alone(self, model: str, layer: int, neuron: int) -> tuple[dict, dict]:
        """One neuron's row, computed from its own vectors, and the table's metadata."""
        why = self.models.why_not_run(model)
        if why is not None:
            raise WeightsUnavailableError(f"the weight views of {model} need its weights: {why}")
        runner = self.models.get(model)
        sites = runner.sites
        if not 0 <= layer < len(sites):
            raise LookupError(f"layer {layer} is out of range: valid layers are 0-{len(sites) - 1}")
        n = sites[layer].n_neurons
        if not 0 <= neuron < n:
            raise LookupError(f"neuron {neuron} is out of range: valid neurons are 0-{n - 1}")
        matrices = self._matrices_of(model, str(cache_path(runner.metadata)))
        refactored = runner.metadata.refactor_glu
        row = neuron_views(sites[layer], matrices, neuron, refactored)
        metadata = table_metadata(sites[0].is_glu, matrices, refactored, TOP_K, 0.0)
        found = WeightTable(row.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)}))
        return found.at(0), metadata

    def _matrices_of(self, model: str, key: str) -> Vocabulary:
        """The vocabulary matrices and norm scales of a model, prepared once."""
        with self._lock:
            held = self._matrices.get(key)
        if held is None:
            runner = self.models.get(model)
            held = Vocabulary.of(runner.model, runner.sites)
            with self._lock:
                held = self._matrices.setdefault(key, held)
        return held

    def counts(self, model: str) -> ClassCounts:
        try:
            table = self.table(model)
        except WeightsPendingError as pending:
            build = self._builds.get(str(cache_path(self.models.get(model).metadata)))
            done = build.layers_done if build is not None else 0
            total = build.layers_total if build is not None and build.layers_total else None
            return ClassCounts(
                model=model, state="computing", note=str(pending), layers_done=done,
                layers_total=total,
            )  # fmt: skip
        by_class, by_family = table.counts()
        return ClassCounts(
            model=model, state="ready", layers=table.layers,
            neurons_per_layer=table.neurons_per_layer, classes=by_class, families=by_family,
        )  # fmt: skip

    def _texts(self, model: str, ids: list[int]) -> list[str]:
        """These token ids' texts, each decoded once per model as first shown (the whole
        vocabulary, decoded at the first view, was a wait of seconds on its page)."""
        held = self._vocabularies.setdefault(model, {})
        missing = [i for i in ids if i not in held]
        if missing:
            tokenizer = self.models.tokens(model).tokenizer
            size = len(tokenizer)
            for i in missing:
                held[i] = tokenizer.decode([i]) if i < size else f"<{i}>"
        return [held[i] for i in ids]


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN: a plain MLP has no gate
