"""transformer-debugger's inference requests and responses on the wire (its
requests_and_responses.py and indexing.py): camelCase, the same field names, defaults and union
order, so that its frontend's bodies validate and its pages read our answers."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from activation_server.routes.neuron_explainer import NodeIdAndDatasets
from activations.api import TokenAndAttentionScalars
from registry.debugger_vocabulary import (
    ActivationLocation,
    GroupId,
    NodeType,
    PassType,
    TdbScalar,
)
from registry.metadata import CamelModel

Prompt = Annotated[str, Field(max_length=100_000)]
SMALL = Field(default=None, ge=1, le=100_000)


class Wire(CamelModel):
    model_config = ConfigDict(extra="ignore")


class MirroredNodeIndex(Wire):
    node_type: NodeType
    tensor_indices: list[int | None] = Field(min_length=1, max_length=4)
    layer_index: int | None = None
    pass_type: PassType = PassType.FORWARD


class MirroredActivationIndex(Wire):
    activation_location_type: ActivationLocation
    tensor_indices: list[int | Literal["All"] | None] = Field(min_length=1, max_length=4)
    layer_index: int | None = None
    pass_type: PassType = PassType.FORWARD


BOUNDED = Field(ge=-1e6, le=1e6)


class AblationSpec(Wire):
    index: MirroredActivationIndex
    value: float = BOUNDED


class LossFnName(str, Enum):
    LOGIT_DIFF = "logit_diff"
    LOGIT_MINUS_MEAN = "logit_minus_mean"
    PROBS = "probs"
    ZERO = "zero"


class LossFnConfig(Wire):
    name: LossFnName
    target_tokens: list[str] | None = Field(default=None, max_length=64)
    distractor_tokens: list[str] | None = Field(default=None, max_length=64)


class AttentionTraceType(str, Enum):
    Q = "Q"
    K = "K"
    QK = "QK"
    V = "V"


class MirroredTraceConfig(Wire):
    node_index: MirroredNodeIndex
    pre_or_post_act: str = "pre"
    detach_layer_norm_scale: bool = True
    attention_trace_type: AttentionTraceType | None = None
    downstream_trace_config: MirroredTraceConfig | None = None


class InferenceRequestSpec(Wire):
    prompt: Prompt
    ablation_specs: list[AblationSpec] | None = Field(default=None, max_length=256)
    loss_fn_config: LossFnConfig | None = None
    trace_config: MirroredTraceConfig | None = None
    activation_index_for_within_layer_grad: MirroredActivationIndex | None = None


class DerivedScalarsRequestSpec(Wire):
    spec_type: Literal["derived_scalars_request_spec"] = "derived_scalars_request_spec"
    dst: TdbScalar
    layer_index: int | None = None
    activation_index: int
    normalize_activations_using_neuron_record: NodeIdAndDatasets | None = None
    pass_type: PassType = PassType.FORWARD
    num_top_tokens: int | None = SMALL


class DerivedAttentionScalarsRequestSpec(Wire):
    spec_type: Literal["derived_attention_scalars_request_spec"] = (
        "derived_attention_scalars_request_spec"
    )
    dst: TdbScalar
    layer_index: int | None = None
    activation_index: int
    normalize_activations_using_neuron_record: NodeIdAndDatasets | None = None


class MultipleTopKDerivedScalarsRequestSpec(Wire):
    spec_type: Literal["multiple_top_k_derived_scalars_request_spec"] = (
        "multiple_top_k_derived_scalars_request_spec"
    )
    dst_list_by_group_id: dict[GroupId, list[TdbScalar]]
    token_index: int | None = None
    top_and_bottom_k: int | None = SMALL
    pass_type: PassType = PassType.FORWARD
    dimensions_to_keep_for_intermediate_sum: list[str] = [
        "sequence_tokens",
        "attended_to_sequence_tokens",
    ]


class TokenScoringType(str, Enum):
    UPVOTED_OUTPUT_TOKENS = "upvoted_output_tokens"
    INPUT_TOKENS_THAT_UPVOTE_MLP = "input_tokens_that_upvote_mlp"
    INPUT_TOKENS_THAT_UPVOTE_ATTN_Q = "input_tokens_that_upvote_attn_q"
    INPUT_TOKENS_THAT_UPVOTE_ATTN_K = "input_tokens_that_upvote_attn_k"


class ScoredTokensRequestSpec(Wire):
    spec_type: Literal["scored_tokens_request_spec"] = "scored_tokens_request_spec"
    token_scoring_type: TokenScoringType
    num_tokens: int = Field(ge=1, le=1000)
    depends_on_spec_name: str


class TokenPairAttributionRequestSpec(Wire):
    spec_type: Literal["token_pair_attribution_request_spec"] = (
        "token_pair_attribution_request_spec"
    )
    num_tokens_attended_to: int = Field(ge=1, le=1000)
    depends_on_spec_name: str


# TDB's order, most specific first; tried left to right as its pydantic v1 union was.
ProcessingRequestSpec = Annotated[
    MultipleTopKDerivedScalarsRequestSpec
    | DerivedScalarsRequestSpec
    | DerivedAttentionScalarsRequestSpec
    | ScoredTokensRequestSpec
    | TokenPairAttributionRequestSpec,
    Field(union_mode="left_to_right"),
]


class InferenceSubRequest(Wire):
    inference_request_spec: InferenceRequestSpec
    processing_request_spec_by_name: dict[str, ProcessingRequestSpec] = Field(
        default={}, max_length=32
    )


class BatchedRequest(Wire):
    inference_sub_requests: list[InferenceSubRequest] = Field(min_length=1, max_length=16)


class TdbRequestSpec(Wire):
    spec_type: Literal["tdb_request_spec"] = "tdb_request_spec"
    prompt: Prompt
    target_tokens: list[str] = Field(max_length=64)
    distractor_tokens: list[str] = Field(max_length=64)
    component_type_for_mlp: Literal["neuron", "autoencoder_latent"] = "neuron"
    component_type_for_attention: Literal["attention_head", "autoencoder_latent"] = "attention_head"
    top_and_bottom_k_for_node_table: int = Field(ge=1, le=10_000)
    hide_early_layers_when_ablating: bool = True
    node_ablations: list[NodeAblation] | None = Field(default=None, max_length=256)
    upstream_node_to_trace: NodeToTrace | None = None
    downstream_node_to_trace: NodeToTrace | None = None


class NodeAblation(Wire):
    node_index: MirroredNodeIndex
    value: float = BOUNDED


class NodeToTrace(Wire):
    node_index: MirroredNodeIndex
    attention_trace_type: AttentionTraceType | None = None
    downstream_trace_config: MirroredTraceConfig | None = None


class BatchedTdbRequest(Wire):
    sub_requests: list[TdbRequestSpec] = Field(min_length=1, max_length=16)


class DerivedScalarsRequest(Wire):
    inference_request_spec: InferenceRequestSpec
    derived_scalars_request_spec: DerivedScalarsRequestSpec


class DerivedAttentionScalarsRequest(Wire):
    inference_request_spec: InferenceRequestSpec
    derived_attention_scalars_request_spec: DerivedAttentionScalarsRequestSpec


class MultipleTopKDerivedScalarsRequest(Wire):
    inference_request_spec: InferenceRequestSpec
    multiple_top_k_derived_scalars_request_spec: MultipleTopKDerivedScalarsRequestSpec


# ---- responses -----------------------------------------------------------------------------


class ModelInfoResponse(Wire):
    model_name: str | None
    has_mlp_autoencoder: bool = False
    mlp_autoencoder_name: str | None = None
    has_attention_autoencoder: bool = False
    attention_autoencoder_name: str | None = None
    n_layers: int


class InferenceAndTokenData(Wire):
    inference_time: float
    memory_used_before: float | None = None
    memory_used_after: float | None = None
    log: str | None = None
    loss: float | None = None
    activation_value_for_backward_pass: float | None = None
    tokens_as_ints: list[int]
    tokens_as_strings: list[str]


class InferenceResponse(Wire):
    inference_and_token_data: InferenceAndTokenData


class TokenAndScalar(Wire):
    token: str
    scalar: float
    normalized_scalar: float


class TopTokens(Wire):
    top: list[TokenAndScalar]
    bottom: list[TokenAndScalar]


class DerivedScalarsResponseData(Wire):
    response_data_type: Literal["derived_scalars_response_data"] = "derived_scalars_response_data"
    activations: list[float]
    normalized_activations: list[float] | None = None
    node_indices: list[MirroredNodeIndex]
    top_tokens: TopTokens | None = None


class DerivedAttentionScalarsResponseData(Wire):
    response_data_type: Literal["derived_attention_scalars_response_data"] = (
        "derived_attention_scalars_response_data"
    )
    token_and_attention_scalars_list: list[TokenAndAttentionScalars]


class TensorND(Wire):
    tensor_type: Literal["tensor_0d", "tensor_1d", "tensor_2d", "tensor_3d"]
    value: Any


class MultipleTopKDerivedScalarsResponseData(Wire):
    response_data_type: Literal["multiple_top_k_derived_scalars_response_data"] = (
        "multiple_top_k_derived_scalars_response_data"
    )
    activations_by_group_id: dict[GroupId, list[float]]
    node_indices: list[MirroredNodeIndex]
    vocab_token_strings_for_indices: list[str | None] | None = None
    intermediate_sum_activations_by_dst_by_group_id: dict[GroupId, dict[TdbScalar, TensorND]]


class ScoredTokensResponseData(Wire):
    response_data_type: Literal["scored_tokens_response_data"] = "scored_tokens_response_data"
    node_indices: list[MirroredNodeIndex]
    top_tokens_list: list[TopTokens | None]


class TopTokensAttendedTo(Wire):
    token_indices: list[int]
    attributions: list[float]


class TokenPairAttributionResponseData(Wire):
    response_data_type: Literal["token_pair_attribution_response_data"] = (
        "token_pair_attribution_response_data"
    )
    node_indices: list[MirroredNodeIndex]
    top_tokens_attended_to_list: list[TopTokensAttendedTo | None]


ProcessingResponseData = (
    MultipleTopKDerivedScalarsResponseData
    | DerivedScalarsResponseData
    | DerivedAttentionScalarsResponseData
    | ScoredTokensResponseData
    | TokenPairAttributionResponseData
)


class InferenceResponseAndResponseDict(Wire):
    inference_response: InferenceResponse
    processing_response_data_by_name: dict[str, ProcessingResponseData] = {}


class BatchedResponse(Wire):
    inference_sub_responses: list[InferenceResponseAndResponseDict]


class DerivedScalarsResponse(InferenceResponse):
    derived_scalars_response_data: DerivedScalarsResponseData


class DerivedAttentionScalarsResponse(InferenceResponse):
    derived_attention_scalars_response_data: DerivedAttentionScalarsResponseData


class MultipleTopKDerivedScalarsResponse(InferenceResponse):
    multiple_top_k_derived_scalars_response_data: MultipleTopKDerivedScalarsResponseData
