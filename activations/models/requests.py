"""What a live request asks and what it gets back, and the plain steps of answering it: checking
it against the model, planning the forward passes within a token budget, and cutting each
text's trace out of a pass's values."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from activations.models.tokens import Tokens
from registry.vocabulary import DST_TO_HOOK, GATE_HOOK, IN_HOOK, DerivedScalarType, quadrant_of


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


def validate(
    request: LiveRequest, short_name: str, n_layers: int, n_neurons: int, is_glu: bool
) -> None:
    """LiveRequestError saying what is out of range and what is valid."""
    if not 0 <= request.layer < n_layers:
        raise LiveRequestError(
            f"layer {request.layer} is out of range: valid layers are 0-{n_layers - 1}"
        )
    bad = [n for n in request.neurons or () if not 0 <= n < n_neurons]
    if bad:
        raise LiveRequestError(
            f"neurons {bad} are out of range: valid neurons are 0-{n_neurons - 1}"
        )
    plain = DerivedScalarType.MLP_POST_ACT  # a plain MLP's one value
    if request.dst not in DST_TO_HOOK or (not is_glu and request.dst != plain):
        valid = [d.value for d in DST_TO_HOOK] if is_glu else [plain.value]
        raise LiveRequestError(
            f"derived scalar type {request.dst.value!r} is not available live for "
            f"{short_name}; valid: {', '.join(valid)}"
        )


def plan_passes(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Consecutive rows grouped so that each pass pads to at most max_batch_tokens."""
    passes: list[list[int]] = []
    for i, length in enumerate(lengths):
        current = passes[-1] if passes else None
        if current is not None:
            width = max(length, *(lengths[j] for j in current))
            if width * (len(current) + 1) <= max_batch_tokens:
                current.append(i)
                continue
        passes.append([i])
    return passes


def trace(
    values: dict[str, torch.Tensor],
    row: int,
    length: int,
    ids: list[int],
    request: LiveRequest,
    tokens: Tokens,
) -> TextTrace:
    """One text's trace (its row of a pass's values): the request's neurons (or its top ones)
    with their values and, for a GLU, each token's quadrant."""
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
    return TextTrace(tokens=tokens.decode_each(ids), token_ids=ids, neurons=traces)


def one_pass_each(id_lists: list[list[int]], budget: int) -> list[list[list[int]]]:
    """Consecutive documents grouped so that each group pads to at most `budget` tokens."""
    groups: list[list[list[int]]] = []
    width = 0
    for ids in id_lists:
        wider = max(width, len(ids))
        if groups and wider * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(ids)
            width = wider
        else:
            groups.append([ids])
            width = len(ids)
    return groups
