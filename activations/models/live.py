"""Live activations: run a registered model on any text and read its neurons, batched.

Several requests go through one forward pass (micro-batching); each gets the values of its own
layer and neurons back. Everything runs under torch.inference_mode in the caller's thread (the
server calls it from a worker thread, never on its event loop).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from activations.models.adapters import MlpSite, find_mlp_sites, glu_refactor_signs
from activations.models.capture import Captured, forward_capturing, site_values
from activations.models.loading import load_model
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


class ModelRunner:
    """One loaded model; loads lazily on first use and stays loaded."""

    def __init__(self, metadata: ModelMetadata, device: str = "cpu", max_tokens: int = 1024):
        self.metadata = metadata
        self.device = device
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._sites: list[MlpSite] = []

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._model is None:
                model, tokenizer = load_model(self.metadata, self.device)
                self._sites = find_mlp_sites(model)
                self._model, self._tokenizer = model, tokenizer

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        self._ensure_loaded()
        return self._tokenizer

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
        return len(self.tokenizer(text).input_ids)

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
        """Answer several requests with one forward pass; one list of traces per request."""
        self._ensure_loaded()
        for request in requests:
            self.validate(request)
        texts = [t for r in requests for t in r.texts]
        encoded = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        layers = sorted({r.layer for r in requests})
        captured: dict[int, dict[str, torch.Tensor]] = {}

        def keep(layer: int, tensors: Captured) -> None:
            captured[layer] = site_values(tensors, self._sites[layer].act)

        self._forward(encoded["input_ids"], encoded["attention_mask"], layers, keep)
        results, row = [], 0
        for request in requests:
            traces = []
            for _ in request.texts:
                length = int(encoded["attention_mask"][row].sum())
                ids = encoded["input_ids"][row, :length].tolist()
                traces.append(self._trace(captured[request.layer], row, length, ids, request))
                row += 1
            results.append(traces)
        return results

    def neuron_values(
        self, id_lists: list[list[int]], layer: int, neuron: int, hooks: list[str]
    ) -> list[dict[str, list[float]]]:
        """One neuron's per-token values on given token ids (e.g. a record's example documents,
        cut after the window shown), in one padded forward pass."""
        self._ensure_loaded()
        self.validate(LiveRequest(texts=(), layer=layer, neurons=(neuron,)))
        width = max((len(ids) for ids in id_lists), default=0)
        if width == 0:
            return [{h: [] for h in hooks} for _ in id_lists]
        pad = self._tokenizer.pad_token_id or 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in id_lists])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in id_lists])
        captured: dict[str, torch.Tensor] = {}

        def keep(_: int, tensors: Captured) -> None:
            one = {h: None if t is None else t[..., neuron] for h, t in tensors.items()}
            captured.update(site_values(one, self._sites[layer].act))

        self._forward(input_ids, mask, [layer], keep)
        return [
            {h: captured[h][row, : len(ids)].tolist() for h in hooks if h in captured}
            for row, ids in enumerate(id_lists)
        ]

    def _forward(self, input_ids, attention_mask, layers: list[int], keep) -> None:
        """One forward pass, stopped after the last of `layers`, calling keep(layer, captured)."""
        sites = [self._sites[layer] for layer in layers]
        forward_capturing(self._model, sites, keep, input_ids, attention_mask)

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
        tokens = [self._tokenizer.decode([i]) for i in ids]
        return TextTrace(tokens=tokens, token_ids=ids, neurons=traces)
