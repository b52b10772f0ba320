"""Weight views served: a model's table is opened from $NEURONS_HOME/weights, or computed once
in a thread of its own from the loaded model's weights (no forward pass: live requests go on),
while asking answers that it is under way and how long it has left. A failure is said for a
while (RETRY_AFTER_S) instead of being tried again on every request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from activations.io.errors import UpstreamError
from activations.models.live import LiveRequest, LiveRequestError
from activations.models.pool import ModelPool
from activations.weights.answers import ClassCounts, NeuronWeightView, TokenScore
from activations.weights.compute import weight_views
from activations.weights.store import WeightTable, cache_path, write_table

RETRY_AFTER_S = 60.0
NAMES = {  # the view's lists by their stored names
    "promotes": "out_top", "suppresses": "out_bottom", "opens_gate": "gate_top",
    "closes_gate": "gate_bottom", "drives_in_up": "in_top", "drives_in_down": "in_bottom",
}  # fmt: skip


class WeightsPendingError(Exception):
    """The model's views are being computed; the message says how far it has come."""


class WeightsUnavailableError(UpstreamError):
    """The views cannot be computed here (the model is over the budget, or failed to load)."""


@dataclass
class _Build:
    started: float = field(default_factory=time.monotonic)
    layers_done: int = 0
    layers_total: int = 0
    failed: str | None = None
    failed_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

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
        self._vocabularies: dict[str, list[str]] = {}
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
                    threading.Thread(
                        target=self._compute, args=(model, key, build), daemon=True
                    ).start()
            return build

    def _fail(self, build: _Build, why: str) -> None:
        build.failed, build.failed_at = why, time.monotonic()
        build.done.set()

    def _compute(self, model: str, key: str, build: _Build) -> None:
        try:
            runner = self.models.get(model)
            sites = runner.sites  # loads the model
            build.layers_total = len(sites)

            def layer_done(_: int) -> None:
                build.layers_done += 1

            table = weight_views(
                runner.model, sites, runner.metadata.refactor_glu, on_layer=layer_done
            )
            path = write_table(table, cache_path(runner.metadata))
            with self._lock:
                self._tables[key] = WeightTable.open(path)
            build.done.set()
        except Exception as error:  # said for a while, then tried again
            self._fail(
                build, f"the weight views of {model} failed: {type(error).__name__}: {error}"
            )

    def view(self, model: str, layer: int, neuron: int, wait: bool = False) -> NeuronWeightView:
        runner = self.models.get(model)
        if runner.is_loaded:  # its shape is known: out of range is said at once, not 503
            try:
                runner.validate(LiveRequest(texts=(), layer=layer, neurons=(neuron,)))
            except LiveRequestError as error:
                raise LiveRequestError(f"{model}: {error}") from None
        table = self.table(model, wait)
        try:
            found = table.neuron(layer, neuron)
        except LookupError as error:
            raise LiveRequestError(str(error)) from None
        vocabulary = self._vocabulary(model)

        def tokens(name: str) -> list[TokenScore]:
            ids, values = found[f"{name}_ids"], found[f"{name}_values"]
            return [
                TokenScore(
                    token=vocabulary[i] if i < len(vocabulary) else f"<{i}>", token_id=i, value=v
                )  # fmt: skip
                for i, v in zip(ids, values, strict=True)
            ]

        lists = {
            view: tokens(stored) if f"{stored}_ids" in found else []
            for view, stored in NAMES.items()
        }
        return NeuronWeightView(
            model=model, layer=layer, neuron=neuron, cos_gate_in=_finite(found["cos_gate_in"]),
            cos_gate_out=_finite(found["cos_gate_out"]), cos_in_out=found["cos_in_out"],
            io_class=found["io_class"], skew=found["skew"], kurtosis=found["kurtosis"],
            family=found["family"], refactored=table.metadata["refactored"], **lists,
        )  # fmt: skip

    def counts(self, model: str) -> ClassCounts:
        try:
            table = self.table(model)
        except WeightsPendingError as pending:
            return ClassCounts(model=model, state="computing", note=str(pending))
        by_class, by_family = table.counts()
        return ClassCounts(
            model=model, state="ready", layers=table.layers,
            neurons_per_layer=table.neurons_per_layer, classes=by_class, families=by_family,
        )  # fmt: skip

    def _vocabulary(self, model: str) -> list[str]:
        """Every token id's text, decoded once per model."""
        held = self._vocabularies.get(model)
        if held is None:
            tokenizer = self.models.tokens(model).tokenizer
            held = [tokenizer.decode([i]) for i in range(len(tokenizer))]
            self._vocabularies[model] = held
        return held


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN: a plain MLP has no gate
