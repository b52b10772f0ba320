"""Live activations: run a registered model on any text and read its neurons, batched.

Several requests go through one forward pass (micro-batching); each gets the values of its own
layer and neurons back. Everything runs under torch.inference_mode in the caller's thread (the
server calls it from a worker thread, never on its event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from activations.models.adapters import glu_refactor_signs
from activations.models.capture import Captured, forward_capturing, site_values
from activations.models.loaded import LoadedModel, ModelUnavailableError
from activations.models.requests import (
    LiveRequest,
    LiveRequestError,
    NeuronTrace,
    TextTrace,
    plan_passes,
    trace,
    validate,
)
from activations.models.tokens import pad
from registry.metadata import ModelMetadata

# the request types, where they have always been imported from
__all__ = [
    "LiveRequest",
    "LiveRequestError",
    "ModelRunner",
    "ModelUnavailableError",
    "NeuronTrace",
    "TextTrace",
]


class ModelRunner(LoadedModel):
    """One model's forward passes (its loading is LoadedModel's, its requests' checks, pass
    plan and traces requests.py's). They belong to one thread (worker.ModelWorker); the lock
    here only guards against a second."""

    MAX_BATCH_TOKENS = 8192  # padded tokens per forward pass: bounds the memory of one pass

    def __init__(self, metadata: ModelMetadata, device: str = "cpu", max_tokens: int = 1024):
        super().__init__(metadata, device)
        self.max_tokens = max_tokens
        self._forward_lock = threading.Lock()
        self._signs: dict[int, torch.Tensor] = {}  # --refactor-glu signs, per layer

    def count_tokens(self, text: str) -> int:
        return self.tokens.count(text)

    def validate(self, request: LiveRequest) -> None:
        self._ensure_loaded()
        short_name = self.metadata.short_name
        validate(request, short_name, self.n_layers, self.n_neurons, self.is_glu)

    def _passes(self, lengths: list[int]) -> list[list[int]]:
        return plan_passes(lengths, self.MAX_BATCH_TOKENS)

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
                traces.append(
                    trace(captured[request.layer], row, len(one), one, request, self._tokens)
                )
        results, at = [], 0
        for request in requests:
            results.append(traces[at : at + len(request.texts)])
            at += len(request.texts)
        return results

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
