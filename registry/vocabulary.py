"""The shared vocabulary, as data: derived scalar types, the GLU sites and the sign quadrants.

Everything else reads these tables: the Parquet schema, the C kernel's generated header, live
inference, the built-in registrations, the OpenAPI enums and the viewer (through GET /schema).
Adding a derived scalar of a GLU neuron is one row of GLU_SITES (with its computation) and one
member of DerivedScalarType.

A GLU neuron has a gate g = x·W_gate, an input ("in") u = x·W_in and act(g); TransformerLens names
the hooks that read them hook_pre, hook_pre_linear, swish and hook_post. Torch-free on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

# A site's value from the gate g, the in u and the model's own act(g): tensors or numbers alike.
Compute = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class GluSite:
    """One per-neuron value of a GLU MLP: one row of the vocabulary."""

    hook: str
    """TransformerLens's hook name; also the column-name part (`gate+_in+_{hook}_mean`)."""
    dst: str
    """The derived scalar type whose records are this site's (its wire name)."""
    label: str
    """For people: what the value is."""
    card_position: int
    """Order of the site's columns within a quadrant in the published dataset card."""
    max_gate_signs: tuple[int, ...]
    """The gate signs of the quadrants whose top examples are kept for this site (swish has
    them only where gate < 0: where gate > 0, swish is monotone in the gate)."""
    flips_with_refactor: bool
    """Whether GLUScope's --refactor-glu (in and W_out negated where the gate and in weights
    point apart) flips this site's sign."""
    compute: Compute
    """How the site's value comes from (gate, in, act(gate))."""
    product_of: tuple[str, str] | None = None
    """Two hooks whose product the value is, so a reader may multiply instead of load it."""
    neuron_explainer_viewer: bool = False
    """Whether neuron-explainer's viewer knows this type (it fails on the others)."""


# The hooks by name, as constants for code that means one of them in particular.
HOOK_PRE, HOOK_PRE_LINEAR, SWISH, HOOK_POST = "hook_pre", "hook_pre_linear", "swish", "hook_post"
GATE_HOOK, IN_HOOK = HOOK_PRE, HOOK_PRE_LINEAR  # the two whose signs make the quadrants

GLU_SITES: tuple[GluSite, ...] = (
    GluSite(
        hook=HOOK_PRE,
        dst="mlp_pre_act",
        label="gate (hook_pre)",
        card_position=2,
        max_gate_signs=(1, -1),
        flips_with_refactor=False,
        compute=lambda gate, in_, act: gate,
    ),
    GluSite(
        hook=HOOK_PRE_LINEAR,
        dst="mlp_pre_linear",
        label="in (hook_pre_linear)",
        card_position=1,
        max_gate_signs=(1, -1),
        flips_with_refactor=True,
        compute=lambda gate, in_, act: in_,
    ),
    GluSite(
        hook=SWISH,
        dst="mlp_swish",
        label="act(gate) (swish)",
        card_position=3,
        max_gate_signs=(-1,),
        flips_with_refactor=False,
        compute=lambda gate, in_, act: act,
    ),
    GluSite(
        hook=HOOK_POST,
        dst="mlp_post_act",
        label="act(gate)·in (hook_post)",
        card_position=0,
        max_gate_signs=(1, -1),
        flips_with_refactor=True,
        compute=lambda gate, in_, act: act * in_,
        product_of=(SWISH, HOOK_PRE_LINEAR),
        neuron_explainer_viewer=True,
    ),
)


@dataclass(frozen=True)
class OtherScalar:
    """A derived scalar type of neuron-explainer's datasets (records in its JSON shape)."""

    dst: str
    token_pairs: bool = False
    """Records hold one value per (token, attended-to token) pair, not per token."""
    autoencoder: str | None = None
    """"mlp" or "attention" for autoencoder latents (the registry's hint on unknown names)."""
    neuron_explainer_viewer: bool = True
    """Whether neuron-explainer's viewer knows this type (it fails on the others)."""


# neuron-explainer's stored types, as its viewer sends them (neuron_viewer's
# getDerivedScalarType for record reads).
OTHER_SCALARS: tuple[OtherScalar, ...] = (
    OtherScalar("attn_write_norm", token_pairs=True),
    OtherScalar("mlp_autoencoder_latent", autoencoder="mlp"),
    OtherScalar("attention_autoencoder_latent", autoencoder="attention"),
    OtherScalar(
        "flattened_attn_write_to_latent_summed_over_heads",
        token_pairs=True,
        autoencoder="attention",
    ),
    OtherScalar("autoencoder_latent", autoencoder=""),
    OtherScalar("resid_post_mlp", neuron_explainer_viewer=False),
)


class _WireName(str, Enum):
    def __str__(self) -> str:
        return self.value


# What a neuron record's values are; the members' values are the wire names, built from the
# rows above (MLP_POST_ACT = "mlp_post_act", ...), GLU types first.
DerivedScalarType = _WireName(  # type: ignore[call-overload]
    "DerivedScalarType",
    [(row.dst.upper(), row.dst) for row in (*GLU_SITES, *OTHER_SCALARS)],
    module=__name__,
)
TOKEN_PAIR_DSTS: frozenset = frozenset(
    DerivedScalarType(row.dst) for row in OTHER_SCALARS if row.token_pairs
)
AUTOENCODER_KIND: dict = {
    DerivedScalarType(row.dst): row.autoencoder
    for row in OTHER_SCALARS
    if row.autoencoder is not None
}
NEURON_EXPLAINER_VIEWER_DSTS: frozenset = frozenset(
    DerivedScalarType(row.dst)
    for row in (*GLU_SITES, *OTHER_SCALARS)
    if row.neuron_explainer_viewer
)

GLU_HOOKS: tuple[str, ...] = tuple(s.hook for s in GLU_SITES)
SITE_BY_HOOK: dict[str, GluSite] = {s.hook: s for s in GLU_SITES}
SITE_BY_DST: dict = {DerivedScalarType(s.dst): s for s in GLU_SITES}
DST_TO_HOOK: dict = {DerivedScalarType(s.dst): s.hook for s in GLU_SITES}
GLU_DSTS: tuple[DerivedScalarType, ...] = tuple(DST_TO_HOOK)
CARD_HOOK_ORDER: tuple[str, ...] = tuple(
    s.hook for s in sorted(GLU_SITES, key=lambda s: s.card_position)
)
REFACTOR_FLIPPED_HOOKS: frozenset[str] = frozenset(
    s.hook for s in GLU_SITES if s.flips_with_refactor
)
# A plain (GPT-2 style) MLP has one value per neuron, act(pre)·1, read where hook_post is.
PLAIN_HOOKS: tuple[str, ...] = (HOOK_POST,)


@dataclass(frozen=True)
class Quadrant:
    """Tokens whose gate and in have these strict signs (an exact zero falls in none)."""

    name: str
    gate_sign: int
    in_sign: int
    short: str
    """Two signs, for tight places like the viewer's token labels."""


QUADRANTS_TABLE: tuple[Quadrant, ...] = (
    Quadrant("gate+_in+", 1, 1, "++"),
    Quadrant("gate+_in-", 1, -1, "+−"),
    Quadrant("gate-_in+", -1, 1, "−+"),
    Quadrant("gate-_in-", -1, -1, "−−"),
)
QUADRANTS: tuple[str, ...] = tuple(q.name for q in QUADRANTS_TABLE)
QUADRANT_SIGNS: dict[str, tuple[int, int]] = {
    q.name: (q.gate_sign, q.in_sign) for q in QUADRANTS_TABLE
}
# Non-GLU MLPs have one pseudo-quadrant holding every token.
ALL_TOKENS = "all"


def has_max(quadrant: str, hook: str) -> bool:
    """Whether the record keeps top examples of `hook` in `quadrant`."""
    site = SITE_BY_HOOK.get(hook)
    signs = QUADRANT_SIGNS.get(quadrant)
    if site is None or signs is None:  # plain MLPs: their one hook in their one quadrant
        return True
    return signs[0] in site.max_gate_signs


def quadrant_of(gate: float, in_: float) -> str | None:
    """The quadrant of one token's (gate, in), None where either is exactly zero."""
    for q in QUADRANTS_TABLE:
        if gate * q.gate_sign > 0 and in_ * q.in_sign > 0:
            return q.name
    return None


# The distribution of a neuron's values: per neuron, a histogram of one hook's values over every
# token, counted per quadrant (the quadrant split), in fixed bins that are the same for every
# model, layer, file and engine, so that counts of two runs add exactly. The bins are signed and
# log-spaced in |value| (one per power of two, 2^-14 to 2^8), with a bin of exact zeros; a value
# falls in its bin by its float32 bits alone (exponent, sign), which every engine computes alike:
#   bin 0: [-inf, -2^8)   ...   bin 22: [-2^-13, -2^-14)   bin 23: [-2^-14, 0)
#   bin 24 (HISTOGRAM_ZERO_BIN): exactly 0 (as numpy sees it, [0, 2^-149))
#   bin 25: [2^-149, 2^-14)   bin 26: [2^-14, 2^-13)   ...   bin 48: [2^8, inf]
# numpy.histogram(values, bins=histogram_edges()) counts the same (NaN: in no numpy bin; the
# engines count it as ±infinity). docs/histogram.md says how to read them.
HISTOGRAM_HOOK = HOOK_POST
HISTOGRAM_MIN_EXPONENT = -14
"""|values| under 2^-14 (but not 0) share one bin of their sign."""
HISTOGRAM_MAX_EXPONENT = 8
"""|values| of 2^8 and more share one bin of their sign."""
HISTOGRAM_MAGNITUDES = HISTOGRAM_MAX_EXPONENT - HISTOGRAM_MIN_EXPONENT + 2
"""Bins per sign: the small ones, one per power of two, the large ones."""
HISTOGRAM_BINS = 2 * HISTOGRAM_MAGNITUDES + 1
HISTOGRAM_ZERO_BIN = HISTOGRAM_MAGNITUDES
HISTOGRAM_STATISTIC = "bin_counts"
"""The statistic part of the histogram's column names ({quadrant}_{hook}_bin_counts)."""
SMALLEST_FLOAT32 = 2.0**-149  # the least positive float32: [0, it) holds zero alone


def histogram_inner_edges() -> list[float]:
    """The HISTOGRAM_BINS - 1 finite edges between the bins (JSON holds no infinities): the
    first bin begins at -inf, the last ends at +inf (inclusive)."""
    powers = [2.0**e for e in range(HISTOGRAM_MIN_EXPONENT, HISTOGRAM_MAX_EXPONENT + 1)]
    return [-p for p in reversed(powers)] + [0.0, SMALLEST_FLOAT32] + powers


def histogram_edges() -> list[float]:
    """Every edge, for numpy.histogram(values, bins=histogram_edges())."""
    return [float("-inf"), *histogram_inner_edges(), float("inf")]


def histogram_description() -> dict[str, Any]:
    """The bins for clients and file metadata: which hook, how many, which is zero, the edges."""
    return {
        "hook": HISTOGRAM_HOOK,
        "bins": HISTOGRAM_BINS,
        "zeroBin": HISTOGRAM_ZERO_BIN,
        "innerEdges": histogram_inner_edges(),
    }
