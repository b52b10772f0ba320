"""TDB's batched inference (interactive_model.handle_batched_request) on our debugger: each
sub-request is one pass (a forward and one backward pass) of its prompt variant, run together on
the model's worker thread; top-k node lists are the union over the sub-requests of each spec
name (so that its frontend can compare them row by row), then each spec is answered."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from activation_server.debugger import wire as w
from activation_server.debugger.convert import variant_of
from activations.errors import DebuggerInputError, DebuggerRequestError
from activations.session import (
    NOT_FINITE,
    Engine,
    Node,
    Scalars,
    Tokens,
    Variant,
    attention_record,
    input_token_scores,
    input_token_scores_of,
    output_token_scores,
    top_nodes,
    top_tokens,
    values_of,
)
from registry.debugger_vocabulary import NODE_TYPE, NodeType, TdbScalar

# Record maxima for normalized activations, by (sub-request, spec name); None: not found.
Maxima = dict[tuple[int, str], float | None]


@dataclass
class Prepared:
    sub: w.InferenceSubRequest
    ids: list[int]
    variant: Variant
    read_neuron: tuple[int, int] | None


def prepare(engine: Engine, tokens: Tokens, request: w.BatchedRequest) -> list[Prepared]:
    out = []
    for sub in request.inference_sub_requests:
        ids = tokens.encode(sub.inference_request_spec.prompt)
        if not ids:
            raise DebuggerInputError("the prompt is empty: it has no tokens")
        variant, read = variant_of(engine, tokens, sub.inference_request_spec, ids)
        out.append(Prepared(sub, ids, variant, read))
    return out


def answer(
    engine: Engine, tokens: Tokens, request: w.BatchedRequest, maxima: Maxima
) -> w.BatchedResponse:
    """Everything on the model's thread: passes, then the answers."""
    prepared = prepare(engine, tokens, request)
    stores, times = [], []
    for one in prepared:
        start = time.perf_counter()
        stores.append(engine.run(one.variant))
        times.append(time.perf_counter() - start)
    nodes = _union_of_top_nodes(prepared, stores)
    responses = []
    for i, (one, store, seconds) in enumerate(zip(prepared, stores, times, strict=True)):
        data = {}
        for name, spec in one.sub.processing_request_spec_by_name.items():
            data[name] = _answer_spec(engine, tokens, one, store, spec, nodes.get(name, []),
                                      maxima.get((i, name)))  # fmt: skip
        result = store.result
        token_data = w.InferenceAndTokenData(
            inference_time=seconds,
            loss=result.loss if result.loss is None or math.isfinite(result.loss) else None,
            activation_value_for_backward_pass=result.traced_value,
            tokens_as_ints=one.ids,
            tokens_as_strings=tokens.decode_each(one.ids),
        )
        responses.append(
            w.InferenceResponseAndResponseDict(
                inference_response=w.InferenceResponse(inference_and_token_data=token_data),
                processing_response_data_by_name=data,
            )
        )
    return w.BatchedResponse(inference_sub_responses=responses)


def _union_of_top_nodes(prepared: list[Prepared], stores: list[Scalars]) -> dict[str, list[Node]]:
    lengths = {len(p.ids) for p in prepared if _has_top_k(p.sub)}
    if len(lengths) > 1:
        raise DebuggerInputError(
            "all prompts of a batched top-k request must have the same length in tokens; got "
            + ", ".join(str(len(p.ids)) for p in prepared)
        )
    found: dict[str, dict[Node, None]] = defaultdict(dict)
    for one, store in zip(prepared, stores, strict=True):
        for name, spec in one.sub.processing_request_spec_by_name.items():
            if isinstance(spec, w.MultipleTopKDerivedScalarsRequestSpec):
                k = spec.top_and_bottom_k
                for node in top_nodes(store, spec.dst_list_by_group_id, k, spec.token_index):
                    found[name].setdefault(node, None)
    nodes = {name: list(seen) for name, seen in found.items()}
    for one in prepared:
        for name, spec in one.sub.processing_request_spec_by_name.items():
            depends = getattr(spec, "depends_on_spec_name", None)
            if depends is not None:
                nodes[name] = nodes.get(depends, [])
    return nodes


def _has_top_k(sub: w.InferenceSubRequest) -> bool:
    return any(
        isinstance(s, w.MultipleTopKDerivedScalarsRequestSpec)
        for s in sub.processing_request_spec_by_name.values()
    )


def wire_node(node: Node) -> w.MirroredNodeIndex:
    return w.MirroredNodeIndex(
        node_type=node.node_type, tensor_indices=list(node.indices), layer_index=node.layer
    )


def tensor_nd(x: torch.Tensor) -> w.TensorND:
    kind = ("tensor_0d", "tensor_1d", "tensor_2d", "tensor_3d")[x.ndim]
    return w.TensorND(tensor_type=kind, value=torch.nan_to_num(x, nan=-999.0).tolist())


def _wire_top_tokens(ends) -> w.TopTokens:
    top, bottom = ends
    return w.TopTokens(
        top=[w.TokenAndScalar(**vars(t)) for t in top],
        bottom=[w.TokenAndScalar(**vars(t)) for t in bottom],
    )


def _answer_spec(engine, tokens, one: Prepared, store: Scalars, spec, nodes, maximum):
    decode = tokens.tokenizer.decode
    if isinstance(spec, w.MultipleTopKDerivedScalarsRequestSpec):
        if not nodes:
            raise DebuggerInputError("a top-k request found no nodes (an empty prompt?)")
        groups = spec.dst_list_by_group_id
        strings = [decode([n.indices[-1]]) if n.node_type == NodeType.VOCAB_TOKEN else None
                   for n in nodes]  # fmt: skip
        return w.MultipleTopKDerivedScalarsResponseData(
            activations_by_group_id={g: values_of(store, s, nodes) for g, s in groups.items()},
            node_indices=[wire_node(n) for n in nodes],
            vocab_token_strings_for_indices=None if all(s is None for s in strings) else strings,
            intermediate_sum_activations_by_dst_by_group_id={
                g: {s: tensor_nd(store.intermediate_sum(s)) for s in scalars}
                for g, scalars in groups.items()
            },
        )
    if isinstance(spec, w.ScoredTokensRequestSpec):
        return _scored_tokens(store, spec, nodes, decode)
    if isinstance(spec, w.TokenPairAttributionRequestSpec):
        return w.TokenPairAttributionResponseData(
            node_indices=[wire_node(n) for n in nodes],
            top_tokens_attended_to_list=[None] * len(nodes),  # autoencoder latents only
        )
    if isinstance(spec, w.DerivedScalarsRequestSpec):
        return _derived_scalars(engine, one, store, spec, maximum, decode)
    return _attention_scalars(engine, store, spec, tokens.decode_each(one.ids))


def _scored_tokens(store: Scalars, spec: w.ScoredTokensRequestSpec, nodes, decode):
    """TDB scores output tokens for every node and input tokens for MLP neurons; its Q and K
    scorings are disabled (None for every node), as in its interactive_model."""
    kind = spec.token_scoring_type
    listed: list[w.TopTokens | None] = [None] * len(nodes)
    if kind == w.TokenScoringType.UPVOTED_OUTPUT_TOKENS and nodes:
        scores = output_token_scores(store, nodes)
        listed = [_wire_top_tokens(e) for e in top_tokens(scores, spec.num_tokens, decode)]
    elif kind == w.TokenScoringType.INPUT_TOKENS_THAT_UPVOTE_MLP:
        at = [i for i, node in enumerate(nodes) if node.node_type == NodeType.MLP_NEURON]
        scores = input_token_scores_of(store, [nodes[i] for i in at])
        if scores is not None:
            for i, ends in zip(at, top_tokens(scores, spec.num_tokens, decode), strict=True):
                listed[i] = _wire_top_tokens(ends)
    return w.ScoredTokensResponseData(
        node_indices=[wire_node(n) for n in nodes], top_tokens_list=listed
    )


def _check_layer_index(engine: Engine, scalar: TdbScalar, layer, index: int) -> None:
    node_type = NODE_TYPE[scalar]
    if node_type in (NodeType.MLP_NEURON, NodeType.ATTENTION_HEAD):
        if layer is None:
            raise DebuggerRequestError(f"{scalar.value} needs a layerIndex")
        kind = "mlp" if node_type == NodeType.MLP_NEURON else "attention"
        engine.check_node(kind, layer, index, 0, 1)


def _derived_scalars(engine, one: Prepared, store: Scalars, spec, maximum, decode):
    scalar = spec.dst
    n = len(one.ids)
    top = None
    if scalar == TdbScalar.VOCAB_TOKEN_WRITE_TO_INPUT_DIRECTION:
        if one.read_neuron is None:
            raise DebuggerInputError(
                "vocab_token_write_to_input_direction reads the neuron a backward-pass ablation "
                "spec names (mlp.post_act at [token, neuron]); give one"
            )
        scores = input_token_scores(store, *one.read_neuron)
        if scores is None:
            raise DebuggerInputError("a plain MLP has no gate to read tokens with")
        values = scores[torch.tensor(one.ids)]
        if spec.num_top_tokens:
            top = _wire_top_tokens(top_tokens(scores[None], spec.num_top_tokens, decode)[0])
        nodes = [Node(NodeType.VOCAB_TOKEN, None, (t, spec.activation_index)) for t in range(n)]
    else:
        node_type = NODE_TYPE[scalar]
        if node_type in (NodeType.ATTENTION_HEAD, NodeType.VOCAB_TOKEN):
            raise DebuggerInputError(
                f"{scalar.value} is not one value per token: ask /derived_attention_scalars "
                "for attention heads' token pairs"
            )
        _check_layer_index(engine, scalar, spec.layer_index, spec.activation_index)
        layer = spec.layer_index if node_type == NodeType.MLP_NEURON else None
        tensor = store.get(scalar, layer)
        values = tensor[:, spec.activation_index if tensor.shape[1] > 1 else 0]
        nodes = [Node(node_type, layer, (t, spec.activation_index)) for t in range(n)]
        if spec.num_top_tokens and node_type == NodeType.MLP_NEURON and values.abs().max() > 0:
            at = int(values.abs().argmax())
            scores = output_token_scores(store, [nodes[at]])
            top = _wire_top_tokens(top_tokens(scores, spec.num_top_tokens, decode)[0])
    normalized = None
    if spec.normalize_activations_using_neuron_record is not None:
        scale = maximum if maximum else float(values.clamp(min=0).max())
        normalized = (values.clamp(min=0) / scale if scale > 0 else values * 0).tolist()
    values = torch.nan_to_num(values, nan=NOT_FINITE, posinf=NOT_FINITE, neginf=NOT_FINITE)
    return w.DerivedScalarsResponseData(
        activations=values.tolist(),
        normalized_activations=normalized,
        node_indices=[wire_node(node) for node in nodes],
        top_tokens=top,
    )


def _attention_scalars(engine, store: Scalars, spec, strings: list[str]):
    """Per token, its values to itself and each earlier token, with neuron-explainer's in/out
    totals and maxima, each on this prompt's scale."""
    scalar = spec.dst
    if NODE_TYPE[scalar] != NodeType.ATTENTION_HEAD:
        raise DebuggerInputError(f"{scalar.value} is not a scalar per token pair")
    _check_layer_index(engine, scalar, spec.layer_index, spec.activation_index)
    pairs = store.get(scalar, spec.layer_index)[:, :, spec.activation_index]  # [T, S]
    flat = [v for t in range(len(strings)) for v in pairs[t, : t + 1].tolist()]
    record = attention_record("", [SimpleNamespace(tokens=strings, activations=flat)], [])
    return w.DerivedAttentionScalarsResponseData(
        token_and_attention_scalars_list=record.most_positive_token_sequences[0]
    )
