"""Live activations: run a registered model on any text and read its neurons, batched.

Several requests go through one forward pass (micro-batching); each gets the values of its own
layer and neurons back. Everything runs under torch.inference_mode in the caller's thread (the
server calls it from a worker thread, never on its event loop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from activations.models.adapters import MlpSite, find_mlp_sites, glu_refactor_signs
from activations.models.capture import Captured, forward_capturing, site_values
from activations.models.loading import load_model
from activations.models.tokens import Tokens, pad
from activations.records.errors import UpstreamError
from registry.metadata import ModelMetadata
from registry.vocabulary import (
    DST_TO_HOOK,
    GATE_HOOK,
    IN_HOOK,
    DerivedScalarType,
    quadrant_of,
)


class LiveRequestError(ValueError):
    """The request cannot be answered as asked (layer, neuron or type out of range)."""


@dataclass(frozen=True)
class LiveRequest:
    texts: tuple[str, ...]
    layer: int
    dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT
    neurons: tuple[int, ...] | None = None
    top_neurons: int | None = None  # those of largest max |value| over the texts, if no neurons
    n_tokens: int = 0  # its texts' tokens, where counted: what it adds to a micro-batch's work


@dataclass
class NeuronTrace:
    neuron: int
    values: list[float]
    quadrants: list[str | None] | None  # GLU only; None where gate or in is exactly 0


@dataclass
class TextTrace:
    tokens: list[str]
    token_ids: list[int]
    neurons: list[NeuronTrace]


class ModelUnavailableError(UpstreamError):
    """The model could not be loaded (weights missing, hub unreachable); said for a while without
    trying again, so that every request does not wait for the same failure."""


class _LockedTokenizer:
    """The model's tokenizer, one call at a time: a fast tokenizer changes its own truncation
    and padding state on each call, so concurrent calls with other settings fail ("Already
    borrowed")."""

    def __init__(self, tokenizer, lock: threading.Lock) -> None:
        self._tokenizer = tokenizer
        self._lock = lock

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def decode(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer.decode(*args, **kwargs)

    def encode(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer.encode(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tokenizer)

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


class ModelRunner:
    """One model; loads lazily on first use and stays loaded. Its forward passes belong to one
    thread (worker.ModelWorker); the lock here only guards against a second."""

    RETRY_LOAD_AFTER_S = 60.0
    MAX_BATCH_TOKENS = 8192  # padded tokens per forward pass: bounds the memory of one pass

    def __init__(self, metadata: ModelMetadata, device: str = "cpu", max_tokens: int = 1024):
        self.metadata = metadata
        self.device = device
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._tokens: Tokens | None = None
        self._signs: dict[int, torch.Tensor] = {}  # --refactor-glu signs, per layer
        self._sites: list[MlpSite] = []
        self._failed: tuple[str, float] | None = None  # (why, when)

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            name = self.metadata.short_name
            if self._failed is not None:
                why, when = self._failed
                wait = self.RETRY_LOAD_AFTER_S - (time.monotonic() - when)
                if wait > 0:
                    ago = time.monotonic() - when
                    raise ModelUnavailableError(
                        f"model {name!r} could not be loaded: {why} (tried {ago:.0f} s ago; "
                        f"tried again in {wait:.0f} s)"
                    )
            try:
                model, tokenizer = load_model(self.metadata, self.device)
            except (OSError, ValueError, ImportError, RuntimeError) as error:
                why = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                self._failed = (why, time.monotonic())
                raise ModelUnavailableError(f"model {name!r} could not be loaded: {why}") from None
            self._failed = None
            self._sites = find_mlp_sites(model)
            self._model = model
            self._tokenizer = _LockedTokenizer(tokenizer, self._tokenizer_lock)
            self._tokens = Tokens(self._tokenizer, self.metadata.bos_token)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        self._ensure_loaded()
        return self._tokenizer

    @property
    def tokens(self) -> Tokens:
        """The tokenizer with the model's BOS rule: how every text here becomes ids."""
        self._ensure_loaded()
        return self._tokens

    @property
    def model(self):
        """The loaded model (loads it); for reading its weights, not for forward passes,
        which are the worker's."""
        self._ensure_loaded()
        return self._model

    @property
    def sites(self) -> list[MlpSite]:
        self._ensure_loaded()
        return self._sites

    @property
    def n_layers(self) -> int:
        self._ensure_loaded()
        return len(self._sites)

    @property
    def n_neurons(self) -> int:
        self._ensure_loaded()
        return self._sites[0].n_neurons

    @property
    def is_glu(self) -> bool:
        self._ensure_loaded()
        return self._sites[0].is_glu

    def count_tokens(self, text: str) -> int:
        return self.tokens.count(text)

    def validate(self, request: LiveRequest) -> None:
        self._ensure_loaded()
        if not 0 <= request.layer < self.n_layers:
            raise LiveRequestError(
                f"layer {request.layer} is out of range: valid layers are 0-{self.n_layers - 1}"
            )
        bad = [n for n in request.neurons or () if not 0 <= n < self.n_neurons]
        if bad:
            raise LiveRequestError(
                f"neurons {bad} are out of range: valid neurons are 0-{self.n_neurons - 1}"
            )
        plain = DerivedScalarType.MLP_POST_ACT  # a plain MLP's one value
        if request.dst not in DST_TO_HOOK or (not self.is_glu and request.dst != plain):
            valid = [d.value for d in DST_TO_HOOK] if self.is_glu else [plain.value]
            raise LiveRequestError(
                f"derived scalar type {request.dst.value!r} is not available live for "
                f"{self.metadata.short_name}; valid: {', '.join(valid)}"
            )

    def run(self, requests: list[LiveRequest]) -> list[list[TextTrace]]:
        """Answer several requests with as few forward passes as the token budget allows; one
        list of traces per request."""
        self._ensure_loaded()
        for request in requests:
            self.validate(request)
        texts = [(r, t) for r in requests for t in r.texts]
        ids = [self._tokens.encode(t, self.max_tokens) for _, t in texts]
        traces: list[TextTrace] = []
        for rows in self._passes([len(i) for i in ids]):
            chunk = [ids[i] for i in rows]
            wanted = [texts[i][0] for i in rows]
            captured = self._capture(chunk, sorted({r.layer for r in wanted}))
            for row, (one, request) in enumerate(zip(chunk, wanted, strict=True)):
                traces.append(self._trace(captured[request.layer], row, len(one), one, request))
        results, at = [], 0
        for request in requests:
            results.append(traces[at : at + len(request.texts)])
            at += len(request.texts)
        return results

    def _passes(self, lengths: list[int]) -> list[list[int]]:
        """Consecutive rows grouped so that each pass pads to at most MAX_BATCH_TOKENS."""
        passes: list[list[int]] = []
        for i, length in enumerate(lengths):
            current = passes[-1] if passes else None
            if current is not None:
                width = max(length, *(lengths[j] for j in current))
                if width * (len(current) + 1) <= self.MAX_BATCH_TOKENS:
                    current.append(i)
                    continue
            passes.append([i])
        return passes

    def _capture(
        self, id_lists: list[list[int]], layers: list[int], neuron: int | None = None
    ) -> dict[int, dict[str, torch.Tensor]]:
        """One forward pass over right-padded token ids: every site's values of these layers
        (of one neuron, where given), by layer."""
        captured: dict[int, dict[str, torch.Tensor]] = {}

        def keep(layer: int, values: dict[str, torch.Tensor]) -> None:
            captured[layer] = values

        self.visit_layers(id_lists, keep, layers, neuron)
        return captured

    def visit_layers(
        self,
        id_lists: list[list[int]],
        visit: Callable[[int, dict[str, torch.Tensor]], None],
        layers: list[int] | None = None,
        neuron: int | None = None,
    ) -> None:
        """One forward pass over right-padded token ids, calling visit(layer, values) as each
        wanted layer (default: all) runs: every site's [B, T, N] float32 values (of one neuron,
        where given), refactored where the registry says. The pass holds one layer's values at a
        time, so that a look at all layers costs no more memory than a look at one."""
        self._ensure_loaded()
        input_ids, mask = pad(id_lists, self._tokenizer.pad_token_id or 0)
        wanted = range(len(self._sites)) if layers is None else layers

        def emit(layer: int, tensors: Captured) -> None:
            sign = self._sign(layer)
            if neuron is not None:
                tensors = {h: None if t is None else t[..., neuron] for h, t in tensors.items()}
                sign = None if sign is None else sign[neuron]
            visit(layer, site_values(tensors, self._sites[layer].act, sign))

        sites = [self._sites[layer] for layer in wanted]
        with self._forward_lock:
            forward_capturing(self._model, sites, emit, input_ids, mask)

    def neuron_values(
        self, id_lists: list[list[int]], layer: int, neuron: int, hooks: list[str]
    ) -> list[dict[str, list[float]]]:
        """One neuron's per-token values on given token ids (e.g. a record's example documents,
        cut after the window shown), in as few passes as the token budget allows."""
        self._ensure_loaded()
        self.validate(LiveRequest(texts=(), layer=layer, neurons=(neuron,)))
        out: list[dict[str, list[float]]] = [{h: [] for h in hooks} for _ in id_lists]
        lengths = [len(ids) for ids in id_lists]
        for rows in self._passes(lengths):
            rows = [i for i in rows if lengths[i]]
            if not rows:
                continue
            values = self._capture([id_lists[i] for i in rows], [layer], neuron)[layer]
            for row, i in enumerate(rows):
                out[i] = {h: values[h][row, : lengths[i]].tolist() for h in hooks if h in values}
        return out

    def _sign(self, layer: int) -> torch.Tensor | None:
        """Where the model is looked at refactored (its registry entry), every value is of the
        refactored model: in and post times the neuron's sign."""
        if not self.metadata.refactor_glu or not self._sites[layer].is_glu:
            return None
        if layer not in self._signs:
            self._signs[layer] = glu_refactor_signs(self._sites[layer]).to(self.device)
        return self._signs[layer]

    def refactor_sign(self, layer: int, neuron: int) -> float:
        """-1.0 where --refactor-glu flipped this neuron's in and output (see collate)."""
        self._ensure_loaded()
        site = self._sites[layer]
        return float(glu_refactor_signs(site)[neuron]) if site.is_glu else 1.0

    def _trace(self, values, row: int, length: int, ids: list[int], request: LiveRequest):
        hook = DST_TO_HOOK[request.dst]
        chosen = values[hook][row, :length].cpu()  # [T, N]
        if request.neurons is not None:
            neurons = list(request.neurons)
        else:
            k = min(request.top_neurons or 10, chosen.shape[1])
            strongest = chosen.abs().amax(dim=0) if length else torch.zeros(chosen.shape[1])
            neurons = strongest.topk(k).indices.tolist()
        gate, in_ = values.get(GATE_HOOK), values.get(IN_HOOK)
        traces = []
        for n in neurons:
            quadrants = None
            if gate is not None:
                g = gate[row, :length, n].tolist()
                u = in_[row, :length, n].tolist()
                quadrants = [quadrant_of(a, b) for a, b in zip(g, u, strict=True)]
            traces.append(NeuronTrace(n, chosen[:, n].tolist(), quadrants))
        tokens = self._tokens.decode_each(ids)
        return TextTrace(tokens=tokens, token_ids=ids, neurons=traces)
