"""Nodes and their rankings: TDB's top-k over a group of comparable scalars (every layer and node
type at once, top k and, for signed groups, bottom k), the values of given nodes, and the vocab
tokens a node's write upvotes and downvotes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from activations.debugger.errors import DebuggerInputError
from activations.debugger.scalars import Scalars
from registry.debugger_vocabulary import NODE_TYPE, GroupId, NodeType, TdbScalar

NOT_FINITE = -999.0  # TDB's stand-in for a value that is not finite


@dataclass(frozen=True)
class Node:
    """TDB's NodeIndex: a node type, its layer (None for the embedding and vocab tokens) and its
    tensor indices (token first; for heads: token, attended-to token, head)."""

    node_type: NodeType
    layer: int | None
    indices: tuple[int, ...]


def scalar_for(node_type: NodeType, scalars: list[TdbScalar]) -> TdbScalar | None:
    return next((s for s in scalars if NODE_TYPE[s] == node_type), None)


def _ranked(
    store: Scalars, scalars: list[TdbScalar], k: int | None, largest: bool, token: int | None
) -> list[tuple[float, Node]]:
    """The k largest (or smallest) values of the scalars over every layer and node, one
    ranking per scalar over its layers stacked (ties by position, as ranking.extremes)."""
    candidates: list[tuple[float, Node]] = []
    for scalar in scalars:
        layers = store.layers(scalar)
        stacked = store.stacked(scalar)  # [L, T, ...]
        first = 0
        if token is not None:
            if not -store.n_tokens <= token < store.n_tokens:
                raise DebuggerInputError(
                    f"token {token} is out of range: the prompt has {store.n_tokens} tokens"
                )
            first = token if token >= 0 else store.n_tokens + token
            stacked = stacked[:, first : first + 1]
        take = stacked.numel() if k is None else k
        values, where = store.ranked(scalar, take, largest, None if token is None else first)
        shape = list(stacked.shape)
        for value, at in zip(values.tolist(), where.tolist(), strict=True):
            position = []
            for size in reversed(shape):
                position.append(at % size)
                at //= size
            position.reverse()
            layer, indices = layers[position[0]], position[1:]
            indices[0] += first
            candidates.append((value, Node(NODE_TYPE[scalar], layer, tuple(indices))))
    candidates.sort(key=lambda c: c[0], reverse=largest)
    return candidates if k is None else candidates[:k]


def top_nodes(
    store: Scalars,
    groups: dict[GroupId, list[TdbScalar]],
    k: int | None,
    token: int | None = None,
) -> list[Node]:
    """The nodes in the top (and, for signed groups, bottom) k of any group, in TDB's order:
    group by group, top then bottom, each node once."""
    seen: dict[Node, None] = {}
    for group, scalars in groups.items():
        ranked = _ranked(store, scalars, k, True, token)
        if not group.exclude_bottom_k:
            ranked += _ranked(store, scalars, k, False, token)
        for _, node in ranked:
            seen.setdefault(node, None)
    return list(seen)


def values_of(store: Scalars, scalars: list[TdbScalar], nodes: list[Node]) -> list[float]:
    """Each node's value in the group's scalar of its type (0.0 where the group has none)."""
    out = []
    for node in nodes:
        scalar = scalar_for(node.node_type, scalars)
        if scalar is None:
            out.append(0.0)
            continue
        tensor = store.get(scalar, node.layer)
        index = node.indices if tensor.ndim == len(node.indices) else node.indices[:1] + (0,)
        value = float(tensor[index])
        out.append(value if math.isfinite(value) else NOT_FINITE)
    return out


@dataclass(frozen=True)
class ScoredToken:
    token: str
    scalar: float
    normalized_scalar: float


def top_tokens(
    scores: torch.Tensor, k: int, decode
) -> list[tuple[list[ScoredToken], list[ScoredToken]]]:
    """Per row of [nodes, V] scores: the k highest and k lowest tokens, scalars normalized by the
    largest |score| of the two ends (TDB's get_most_upvoted_and_downvoted_tokens_for_nodes).
    Each token is decoded once."""
    k = min(k, scores.shape[1])
    top_values, top_ids = scores.topk(k, dim=1)
    bottom_values, bottom_ids = scores.topk(k, dim=1, largest=False)
    scales = torch.maximum(top_values[:, :1].abs(), bottom_values[:, :1].abs())[:, 0].tolist()
    ids = (top_ids.tolist(), bottom_ids.tolist())
    names = {i: decode(i) for i in {i for end in ids for row in end for i in row}}
    ends = []
    for values, end in zip((top_values.tolist(), bottom_values.tolist()), ids, strict=True):
        ends.append(
            [
                [
                    ScoredToken(names[i], v, v / scale if scale else 0.0)
                    for v, i in zip(row_values, row_ids, strict=True)
                ]
                for scale, row_values, row_ids in zip(scales, values, end, strict=True)
            ]
        )
    return list(zip(ends[0], ends[1], strict=True))


def output_token_scores(store: Scalars, nodes: list[Node]) -> torch.Tensor:
    """[nodes, V]: each node's write through the unembedding (with the final norm's gain), mean
    subtracted (logprobs ignore a constant): TDB's TokenWriteConverter."""
    writes = torch.stack([store.write_vector(n.node_type, n.layer, n.indices) for n in nodes])
    scores = writes @ store.weights.unembedding.T
    return scores - scores.mean(dim=1, keepdim=True)


def input_token_scores_of(store: Scalars, nodes: list[Node]) -> torch.Tensor | None:
    """[nodes, V] for MLP neurons (input_token_scores, one pass over the embedding)."""
    gates = store.weights.gates
    if gates is None or not nodes:
        return None
    rows = torch.stack([gates[n.layer, n.indices[-1]] for n in nodes])  # [n, D]
    return rows @ store.weights.embedding.T


def input_token_scores(store: Scalars, layer: int, neuron: int) -> torch.Tensor | None:
    """[V]: each token's embedding read by the neuron's gate (a GLU neuron opens on the tokens
    its gate reads most; TDB reads a plain MLP's input weights); None for a plain MLP."""
    rows = store.weights.gate_rows(layer)
    if rows is None:
        return None
    return store.weights.embedding @ rows[neuron]
