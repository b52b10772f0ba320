"""The Transformer Debugger's names on the wire (transformer-debugger's DerivedScalarType,
NodeType, GroupId, ActivationLocationType and PassType values), those the debugger serves; one
place for them, as vocabulary.py is for GLU sites."""

from __future__ import annotations

from enum import Enum

from registry.vocabulary import DerivedScalarType


class TdbScalar(str, Enum):
    """Derived scalars computed live, per token (or token pair) and node."""

    MLP_POST_ACT = "mlp_post_act"
    MLP_PRE_ACT = "mlp_pre_act"  # a GLU's gate
    MLP_PRE_LINEAR = "mlp_pre_linear"  # a GLU's in
    MLP_SWISH = "mlp_swish"  # act(gate)
    MLP_WRITE_NORM = "mlp_write_norm"
    MLP_ACT_TIMES_GRAD = "mlp_act_times_grad"
    MLP_WRITE_TO_FINAL_RESIDUAL_GRAD = "mlp_write_to_final_residual_grad"
    ATTN_QK_PROBS = "attn_qk_probs"
    UNFLATTENED_ATTN_WRITE_NORM = "unflattened_attn_write_norm"
    UNFLATTENED_ATTN_ACT_TIMES_GRAD = "unflattened_attn_act_times_grad"
    UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD = "unflattened_attn_write_to_final_residual_grad"
    RESID_POST_EMBEDDING_NORM = "resid_post_embedding_norm"
    TOKEN_ATTRIBUTION = "token_attribution"
    RESID_POST_EMBEDDING_PROJ_TO_FINAL_RESIDUAL_GRAD = (
        "resid_post_embedding_proj_to_final_residual_grad"
    )
    ALWAYS_ONE = "always_one"
    LOGITS = "logits"
    VOCAB_TOKEN_WRITE_TO_INPUT_DIRECTION = "vocab_token_write_to_input_direction"


# The GLU sites of the vocabulary that are also live derived scalars (same wire names).
GLU_LIVE_SCALARS: dict[TdbScalar, DerivedScalarType] = {
    TdbScalar(d.value): d for d in DerivedScalarType if d.value in TdbScalar._value2member_map_
}


class NodeType(str, Enum):
    ATTENTION_HEAD = "attention_head"
    MLP_NEURON = "mlp_neuron"
    LAYER = "layer"
    VOCAB_TOKEN = "vocab_token"


NODE_TYPE: dict[TdbScalar, NodeType] = {
    **{s: NodeType.MLP_NEURON for s in TdbScalar if s.value.startswith("mlp_")},
    **{s: NodeType.ATTENTION_HEAD for s in TdbScalar if "attn" in s.value},
    TdbScalar.RESID_POST_EMBEDDING_NORM: NodeType.LAYER,
    TdbScalar.TOKEN_ATTRIBUTION: NodeType.LAYER,
    TdbScalar.RESID_POST_EMBEDDING_PROJ_TO_FINAL_RESIDUAL_GRAD: NodeType.LAYER,
    TdbScalar.ALWAYS_ONE: NodeType.LAYER,
    TdbScalar.LOGITS: NodeType.VOCAB_TOKEN,
    TdbScalar.VOCAB_TOKEN_WRITE_TO_INPUT_DIRECTION: NodeType.VOCAB_TOKEN,
}
# Scalars needing the backward pass of the loss (or a traced node).
NEEDS_GRADIENT: frozenset[TdbScalar] = frozenset(
    s for s in TdbScalar if "grad" in s.value or s == TdbScalar.TOKEN_ATTRIBUTION
)


class GroupId(str, Enum):
    ACT_TIMES_GRAD = "act_times_grad"
    ACTIVATION = "activation"
    DIRECT_WRITE_TO_GRAD = "direct_write_to_grad"
    DIRECTION_WRITE = "direction_write"
    LOGITS = "logits"
    MLP_LAYER_WRITE = "mlp_layer_write"
    SINGLETON = "singleton"
    TOKEN_WRITE = "token_write"
    TOKEN_READ = "token_read"
    WRITE_NORM = "write_norm"
    TOKEN_PAIR_ATTRIBUTION = "token_pair_attribution"

    @property
    def exclude_bottom_k(self) -> bool:
        """TDB: groups of non-negative scalars (and logits) keep their top k alone."""
        return self in (GroupId.WRITE_NORM, GroupId.ACTIVATION, GroupId.LOGITS)


# TDB's node-table groups for neurons and heads (tdb_conversions.make_grouped_dsts_per_component).
NODE_TABLE_GROUPS: dict[GroupId, list[TdbScalar]] = {
    GroupId.WRITE_NORM: [
        TdbScalar.RESID_POST_EMBEDDING_NORM,
        TdbScalar.MLP_WRITE_NORM,
        TdbScalar.UNFLATTENED_ATTN_WRITE_NORM,
    ],
    GroupId.ACT_TIMES_GRAD: [
        TdbScalar.TOKEN_ATTRIBUTION,
        TdbScalar.MLP_ACT_TIMES_GRAD,
        TdbScalar.UNFLATTENED_ATTN_ACT_TIMES_GRAD,
    ],
    GroupId.DIRECTION_WRITE: [
        TdbScalar.RESID_POST_EMBEDDING_PROJ_TO_FINAL_RESIDUAL_GRAD,
        TdbScalar.MLP_WRITE_TO_FINAL_RESIDUAL_GRAD,
        TdbScalar.UNFLATTENED_ATTN_WRITE_TO_FINAL_RESIDUAL_GRAD,
    ],
    GroupId.ACTIVATION: [
        TdbScalar.ALWAYS_ONE,
        TdbScalar.MLP_POST_ACT,
        TdbScalar.ATTN_QK_PROBS,
    ],
}


class ActivationLocation(str, Enum):
    """The activation locations an ablation may name."""

    MLP_POST_ACT = "mlp.post_act"
    ATTN_QK_PROBS = "attn.qk_probs"
    RESID_FINAL_LAYER_NORM_SCALE = "resid.final_layer_norm_scale"


class PassType(str, Enum):
    FORWARD = "forward"
    BACKWARD = "backward"
