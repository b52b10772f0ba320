"""Derived scalar types and the TransformerLens hook each GLU type reads.

Lightweight on purpose: the registry and the server import it without torch.
"""

from __future__ import annotations

from enum import Enum

# The four per-neuron values of a GLU MLP, named as TransformerLens names its hooks.
HOOK_PRE = "hook_pre"  # gate g = x·W_gate
HOOK_PRE_LINEAR = "hook_pre_linear"  # in u = x·W_in
SWISH = "swish"  # act(g)
HOOK_POST = "hook_post"  # act(g)·u
GLU_HOOKS: tuple[str, ...] = (HOOK_PRE, HOOK_PRE_LINEAR, SWISH, HOOK_POST)


class DerivedScalarType(str, Enum):
    """What a neuron record's values are; the values are the wire names."""

    MLP_POST_ACT = "mlp_post_act"
    MLP_PRE_ACT = "mlp_pre_act"
    MLP_PRE_LINEAR = "mlp_pre_linear"
    MLP_SWISH = "mlp_swish"
    ATTN_WRITE_NORM = "attn_write_norm"
    MLP_AUTOENCODER_LATENT = "mlp_autoencoder_latent"
    ATTENTION_AUTOENCODER_LATENT = "attention_autoencoder_latent"
    FLATTENED_ATTN_WRITE_TO_LATENT_SUMMED_OVER_HEADS = (
        "flattened_attn_write_to_latent_summed_over_heads"
    )

    def __str__(self) -> str:
        return self.value


# The one place that ties a derived scalar type to the hook whose values it is.
DST_TO_HOOK: dict[DerivedScalarType, str] = {
    DerivedScalarType.MLP_PRE_ACT: HOOK_PRE,
    DerivedScalarType.MLP_PRE_LINEAR: HOOK_PRE_LINEAR,
    DerivedScalarType.MLP_SWISH: SWISH,
    DerivedScalarType.MLP_POST_ACT: HOOK_POST,
}
HOOK_TO_DST: dict[str, DerivedScalarType] = {hook: dst for dst, hook in DST_TO_HOOK.items()}
GLU_DSTS: tuple[DerivedScalarType, ...] = tuple(DST_TO_HOOK)


def parse_dst(value: str | DerivedScalarType) -> DerivedScalarType:
    """Parse a wire name, with an error that lists the valid ones."""
    try:
        return DerivedScalarType(value)
    except ValueError:
        valid = ", ".join(d.value for d in DerivedScalarType)
        raise ValueError(
            f"unknown derived scalar type {str(value)!r}; valid types are: {valid}"
        ) from None
