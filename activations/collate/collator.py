"""The Collator: running totals for the chosen layers of one model, fed tokenized batches.

Each batch goes through the model once; every wanted layer's neurons are captured inside that
pass (activations.models.capture) and folded into the layer's accumulator by the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from activations.collate.accumulator import LayerAccumulator
from activations.collate.engines import BatchInfo, Engine, choose_engine, make_engine
from activations.models.adapters import MlpSite, find_mlp_sites, glu_refactor_signs
from activations.models.capture import Captured, forward_capturing
from activations.records.schema import DEFAULT_TOP_K, GLU_LAYOUT, PLAIN_LAYOUT, RecordLayout


@dataclass
class Collator:
    """Running totals for the chosen layers of one model; feed it tokenized batches."""

    model: torch.nn.Module
    top_k: int = DEFAULT_TOP_K
    layers: list[int] | None = None
    refactor_glu: bool = False
    engine: str = "auto"  # one of ENGINES; after __post_init__, the one that runs
    expected_tokens: int | None = None  # the job's size, where known: "auto" weighs warm-ups
    histogram: bool = True  # count each neuron's value histogram (off only to measure its cost)
    sites: list[MlpSite] = field(init=False)
    layout: RecordLayout = field(init=False)
    accumulators: dict[int, LayerAccumulator] = field(init=False)
    n_tokens: int = 0
    n_documents: int = 0

    def __post_init__(self) -> None:
        all_sites = find_mlp_sites(self.model)
        valid_layers = range(len(all_sites))
        chosen = sorted(set(self.layers)) if self.layers is not None else list(valid_layers)
        bad = [layer for layer in chosen if layer not in valid_layers]
        if bad or not chosen:
            raise ValueError(
                f"layers {bad or chosen} are not in the model; "
                f"valid layers are 0-{len(all_sites) - 1}"
            )
        self.layers = chosen
        self.n_model_layers = len(all_sites)
        self.sites = [all_sites[layer] for layer in chosen]
        self.layout = GLU_LAYOUT if all_sites[0].is_glu else PLAIN_LAYOUT
        if self.refactor_glu and not self.sites[0].is_glu:
            raise ValueError("--refactor-glu needs a GLU model (gate and in projections)")
        device = next(self.model.parameters()).device
        self.accumulators = {
            s.layer: LayerAccumulator(
                self.layout, s.n_neurons, self.top_k, device, with_histogram=self.histogram
            )
            for s in self.sites
        }
        self._signs = {
            s.layer: glu_refactor_signs(s).to(device) if self.refactor_glu else None
            for s in self.sites
        }
        neuron_tokens = None
        if self.expected_tokens is not None:
            neuron_tokens = self.expected_tokens * sum(s.n_neurons for s in self.sites)
        self.engine = choose_engine(self.engine, self.layout, self.model, neuron_tokens)
        self._engine: Engine = make_engine(self.engine, self.layout, self.sites[0].act)

    def add_batch(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, doc_indices: torch.Tensor
    ) -> None:
        """One forward pass over a right-padded batch; padding never counts."""
        self.n_documents += len(doc_indices)
        if input_ids.shape[1] == 0:
            return
        batch = BatchInfo(
            valid=attention_mask.bool(),
            doc_indices=doc_indices,
            on_device=doc_indices.to(input_ids.device),
        )

        def on_layer(layer: int, captured: Captured) -> None:
            self._engine.fold(self.accumulators[layer], captured, batch, self._signs[layer])

        forward_capturing(self.model, self.sites, on_layer, input_ids, attention_mask)
        self.n_tokens += int(attention_mask.sum())

    def state_dict(self) -> dict[str, Any]:
        return {
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "layers": {layer: acc.state_dict() for layer, acc in self.accumulators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_tokens = state["n_tokens"]
        self.n_documents = state["n_documents"]
        for layer, acc_state in state["layers"].items():
            self.accumulators[layer].load_state_dict(acc_state)
