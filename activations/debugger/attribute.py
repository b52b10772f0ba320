"""Which neurons and heads of each layer carry a logit difference: one forward and one backward
pass, each layer's top and bottom nodes by act × grad, with their activations and direct
effects (TDB's node table, per layer)."""

from __future__ import annotations

from typing import Literal

import torch

from activations.debugger.engine import Engine
from activations.debugger.passes import Variant
from activations.debugger.scalars import Scalars
from activations.models.tokens import Tokens
from registry.debugger_vocabulary import TdbScalar
from registry.metadata import CamelModel


class NodeAttribution(CamelModel):
    kind: Literal["neuron", "head"]
    layer: int
    index: int
    """The neuron, or the attention head."""
    token: int
    attended_to: int | None = None
    activation: float
    """act(gate)·in for a neuron; the attention probability for a head's token pair."""
    act_times_grad: float
    direct_effect: float
    """Its write · the gradient at the final residual stream (the final norm's scale fixed)."""


class LayerAttribution(CamelModel):
    layer: int
    top_neurons: list[NodeAttribution]
    bottom_neurons: list[NodeAttribution]
    top_heads: list[NodeAttribution]
    bottom_heads: list[NodeAttribution]


class AttributionResult(CamelModel):
    model: str
    tokens: list[str]
    target: str
    distractor: str | None
    logit_difference: float
    """logit(target) − logit(distractor) at the last token (the logit alone without one)."""
    layers: list[LayerAttribution]


ACTIVATION = {"neuron": TdbScalar.MLP_POST_ACT, "head": TdbScalar.ATTN_QK_PROBS}
ATTRIBUTION = {
    "neuron": TdbScalar.MLP_ACT_TIMES_GRAD,
    "head": TdbScalar.UNFLATTENED_ATTN_ACT_TIMES_GRAD,
}
DIRECT = {
    "neuron": TdbScalar.MLP_WRITE_TO_FINAL_RESIDUAL_GRAD,
    "head": TdbScalar.UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD,
}


def _nodes(store: Scalars, kind, layer: int, k: int, largest: bool) -> list[NodeAttribution]:
    scores = store.get(ATTRIBUTION[kind], layer)
    flat = scores.reshape(-1)
    values, where = flat.topk(min(k, flat.numel()), largest=largest)
    out = []
    for at in where.tolist():
        index = [int(i) for i in torch.unravel_index(torch.tensor(at), scores.shape)]
        position = tuple(index)
        out.append(
            NodeAttribution(
                kind=kind,
                layer=layer,
                index=index[-1],
                token=index[0],
                attended_to=index[1] if kind == "head" else None,
                activation=float(store.get(ACTIVATION[kind], layer)[position]),
                act_times_grad=float(scores[position]),
                direct_effect=float(store.get(DIRECT[kind], layer)[position]),
            )
        )
    return out


def attribute(
    engine: Engine,
    tokens: Tokens,
    ids: list[int],
    target: int,
    distractor: int | None = None,
    top: int = 10,
) -> AttributionResult:
    """One forward and one backward pass on the model's thread."""
    store = engine.run(Variant(tuple(ids), (target,), () if distractor is None else (distractor,)))
    layers = []
    for layer in range(engine.parts.n_layers):
        layers.append(
            LayerAttribution(
                layer=layer,
                top_neurons=_nodes(store, "neuron", layer, top, True),
                bottom_neurons=_nodes(store, "neuron", layer, top, False),
                top_heads=_nodes(store, "head", layer, top, True),
                bottom_heads=_nodes(store, "head", layer, top, False),
            )
        )
    decode = tokens.tokenizer.decode
    return AttributionResult(
        model=engine.runner.metadata.short_name,
        tokens=tokens.decode_each(ids),
        target=decode([target]),
        distractor=None if distractor is None else decode([distractor]),
        logit_difference=float(store.result.loss),
        layers=layers,
    )
