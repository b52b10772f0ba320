"""TDB's compact debugger request as the general one it stands for (its tdb_conversions.py), and
the general request's ablations, loss and trace as a debugger pass's Variant."""

from __future__ import annotations

from activation_server.debugger.wire import (
    AblationSpec,
    AttentionTraceType,
    InferenceRequestSpec,
    InferenceSubRequest,
    LossFnConfig,
    LossFnName,
    MirroredActivationIndex,
    MirroredNodeIndex,
    MirroredTraceConfig,
    MultipleTopKDerivedScalarsRequestSpec,
    ScoredTokensRequestSpec,
    TdbRequestSpec,
    TokenPairAttributionRequestSpec,
    TokenScoringType,
)
from activations.errors import DebuggerInputError
from activations.session import Ablation, Engine, Tokens, Trace, Variant, single_token
from registry.debugger_vocabulary import (
    NODE_TABLE_GROUPS,
    ActivationLocation,
    GroupId,
    NodeType,
    PassType,
    TdbScalar,
)


def from_tdb(spec: TdbRequestSpec) -> InferenceSubRequest:
    """tdb_conversions.convert_tdb_request_spec_to_inference_sub_request: the logit difference
    as the loss (none where a node is traced), the node ablations and the final norm's scale
    detached, and the node table's, token display's, scored tokens' and logits' specs."""
    if spec.component_type_for_mlp != "neuron" or spec.component_type_for_attention != (
        "attention_head"
    ):
        raise DebuggerInputError(
            "autoencoder latents are not served: componentTypeForMlp must be 'neuron' and "
            "componentTypeForAttention 'attention_head'"
        )
    ablations = [_node_ablation(a.node_index, a.value) for a in spec.node_ablations or []]
    ablations.append(
        AblationSpec(
            index=MirroredActivationIndex(
                activation_location_type=ActivationLocation.RESID_FINAL_LAYER_NORM_SCALE,
                tensor_indices=["All", "All"],
                pass_type=PassType.BACKWARD,
            ),
            value=0,
        )
    )
    loss = LossFnConfig(
        name=LossFnName.LOGIT_DIFF,
        target_tokens=spec.target_tokens,
        distractor_tokens=spec.distractor_tokens,
    )
    trace = None
    token_index = -1
    upstream = spec.upstream_node_to_trace
    if upstream is not None:
        trace = MirroredTraceConfig(
            node_index=upstream.node_index,
            attention_trace_type=upstream.attention_trace_type,
        )
        token_index = upstream.node_index.tensor_indices[0] or 0
        loss = None
    scored = {
        "upvotedOutputTokens": TokenScoringType.UPVOTED_OUTPUT_TOKENS,
        "inputTokensThatUpvoteMlp": TokenScoringType.INPUT_TOKENS_THAT_UPVOTE_MLP,
        "inputTokensThatUpvoteAttnQ": TokenScoringType.INPUT_TOKENS_THAT_UPVOTE_ATTN_Q,
        "inputTokensThatUpvoteAttnK": TokenScoringType.INPUT_TOKENS_THAT_UPVOTE_ATTN_K,
    }
    specs = {
        "topKComponents": MultipleTopKDerivedScalarsRequestSpec(
            dst_list_by_group_id=NODE_TABLE_GROUPS,
            top_and_bottom_k=spec.top_and_bottom_k_for_node_table,
        ),
        "componentSumsForTokenDisplay": MultipleTopKDerivedScalarsRequestSpec(
            dst_list_by_group_id=NODE_TABLE_GROUPS, top_and_bottom_k=1
        ),
        **{
            name: ScoredTokensRequestSpec(
                token_scoring_type=kind, num_tokens=10, depends_on_spec_name="topKComponents"
            )
            for name, kind in scored.items()
        },
        "tokenPairAttribution": TokenPairAttributionRequestSpec(
            num_tokens_attended_to=3, depends_on_spec_name="topKComponents"
        ),
        "topOutputTokenLogits": MultipleTopKDerivedScalarsRequestSpec(
            dst_list_by_group_id={GroupId.LOGITS: [TdbScalar.LOGITS]},
            top_and_bottom_k=100,
            token_index=token_index,
        ),
    }
    return InferenceSubRequest(
        inference_request_spec=InferenceRequestSpec(
            prompt=spec.prompt, loss_fn_config=loss, ablation_specs=ablations, trace_config=trace
        ),
        processing_request_spec_by_name=specs,
    )


def _indices(node: MirroredNodeIndex) -> list[int]:
    """A neuron's [token, neuron], a head's [token, attended-to token, head]."""
    count = 3 if node.node_type == NodeType.ATTENTION_HEAD else 2
    if len(node.tensor_indices) != count:
        raise DebuggerInputError(
            f"a {node.node_type.value} node has {count} tensorIndices, not "
            f"{len(node.tensor_indices)}"
        )
    return [_int(i, f"a {node.node_type.value} node's index") for i in node.tensor_indices]


def _node_ablation(node: MirroredNodeIndex, value: float) -> AblationSpec:
    """tdb_conversions.node_ablation_to_ablation_spec."""
    if node.node_type in (NodeType.ATTENTION_HEAD, NodeType.MLP_NEURON):
        _indices(node)
    if node.node_type == NodeType.ATTENTION_HEAD:
        where, indices = ActivationLocation.ATTN_QK_PROBS, [node.tensor_indices[0], "All"]
    elif node.node_type == NodeType.MLP_NEURON:
        where, indices = ActivationLocation.MLP_POST_ACT, [node.tensor_indices[0]]
    else:
        raise DebuggerInputError(
            f"a {node.node_type.value} node cannot be ablated (MLP neurons and attention heads)"
        )
    return AblationSpec(
        index=MirroredActivationIndex(
            activation_location_type=where,
            tensor_indices=[*indices, node.tensor_indices[-1]],
            layer_index=node.layer_index,
        ),
        value=value,
    )


def _int(value, what: str) -> int:
    if not isinstance(value, int):
        raise DebuggerInputError(f"{what} must be a number, not {value!r}")
    return value


def variant_of(
    engine: Engine, tokens: Tokens, spec: InferenceRequestSpec, ids: list[int]
) -> tuple[Variant, tuple[int, int] | None]:
    """The pass a request spec asks for, checked against the model (404 for nodes it lacks,
    422 for the rest); with the neuron a backward-pass "ablation" names (the logit lens's input
    tokens), if any."""
    n = len(ids)
    ablations, detach, read_neuron = [], False, None
    for spec_ in spec.ablation_specs or []:
        index = spec_.index
        where = index.activation_location_type
        if where == ActivationLocation.RESID_FINAL_LAYER_NORM_SCALE:
            detach = True
            continue
        layer = _int(index.layer_index, "an ablation's layerIndex")
        token = _int(index.tensor_indices[0], "an ablation's token index")
        node = _int(index.tensor_indices[-1], "an ablation's node index")
        kind = "mlp" if where == ActivationLocation.MLP_POST_ACT else "attention"
        _check(engine, kind, layer, node, token, n)
        if index.pass_type == PassType.BACKWARD:
            if kind == "mlp":
                read_neuron = (layer, node)
            continue
        ablations.append(Ablation(kind, layer, token % n, node, spec_.value))
    targets: tuple[int, ...] = ()
    distractors: tuple[int, ...] = ()
    loss = spec.loss_fn_config
    if loss is not None and loss.name == LossFnName.LOGIT_DIFF:
        if not loss.target_tokens:
            raise DebuggerInputError("the logit difference needs at least one target token")
        targets = tuple(single_token(tokens, t, "target") for t in loss.target_tokens)
        distractors = tuple(
            single_token(tokens, t, "distractor") for t in loss.distractor_tokens or []
        )
    elif loss is not None and loss.name != LossFnName.ZERO:
        raise DebuggerInputError(
            f"loss {loss.name.value!r} is not served; valid: 'logit_diff', 'zero'"
        )
    trace = _trace(engine, spec.trace_config, n) if spec.trace_config else None
    variant = Variant(tuple(ids), targets, distractors, tuple(ablations), trace,
                      detach_final_scale=detach)  # fmt: skip
    return variant, read_neuron


def _check(engine: Engine, kind: str, layer: int, node: int, token: int, n: int) -> None:
    if not -n <= token < n:
        raise DebuggerInputError(f"token {token} is out of range: the prompt has {n} tokens")
    engine.check_node(kind, layer, node, token, n)


def _trace(engine: Engine, config: MirroredTraceConfig, n: int) -> Trace:
    node = config.node_index
    layer = _int(node.layer_index, "the traced node's layerIndex")
    indices = _indices(node)
    if node.node_type == NodeType.MLP_NEURON:
        _check(engine, "mlp", layer, indices[-1], indices[0], n)
        return Trace("mlp", layer, indices[0] % n, indices[-1])
    if node.node_type == NodeType.ATTENTION_HEAD:
        through = config.attention_trace_type or AttentionTraceType.QK
        if through == AttentionTraceType.V or config.downstream_trace_config is not None:
            raise DebuggerInputError(
                "tracing through attention values (V) is not served; trace a head through "
                "Q, K or QK"
            )
        _check(engine, "attention", layer, indices[-1], indices[0], n)
        _check(engine, "attention", layer, indices[-1], indices[1], n)
        return Trace("attention", layer, indices[0] % n, indices[-1], indices[1] % n,
                     through.value)  # fmt: skip
    raise DebuggerInputError(
        f"a {node.node_type.value} node cannot be traced (MLP neurons and attention heads)"
    )
