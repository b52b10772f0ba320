"""Interventions and attributions in our own terms (the Python API's Session.intervene and
Session.attribute, the viewer's "intervene" panel): what changes at each token when a GLU neuron
is zeroed, clamped or scaled (optionally only where it sits in one quadrant), and which neurons
and heads of each layer carry a logit difference."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
from pydantic import Field

from activations.debugger.engine import DebuggerInputError, Engine
from activations.debugger.passes import Ablation, Variant
from activations.debugger.scalars import Scalars
from activations.models.tokens import Tokens
from registry.metadata import CamelModel
from registry.vocabulary import QUADRANT_SIGNS, quadrant_of

Mode = Literal["zero", "clamp", "scale"]


class TokenProbability(CamelModel):
    token: str
    token_id: int
    probability: float


class TokenChange(CamelModel):
    """One position: the neuron there before and after, and the prediction of the next token."""

    token: str
    quadrant: str | None
    intervened: bool
    activation_before: float
    activation_after: float
    loss_before: float | None = Field(description="−log p(next token); None at the last token")
    loss_after: float | None
    loss_change: float | None
    top_before: list[TokenProbability]
    top_after: list[TokenProbability]
    direct_effect: float | None = Field(
        default=None,
        description="the neuron's write here · the chosen token's unembedding, the final norm's "
        "scale held fixed: its direct effect on that logit",
    )


class InterventionResult(CamelModel):
    model: str
    layer: int
    neuron: int
    mode: Mode
    value: float
    quadrant: str | None
    direct_effect_token: str | None
    tokens: list[TokenChange]
    mean_loss_change: float | None


def intervention_ablation(
    layer: int, neuron: int, mode: Mode, value: float, quadrant: str | None, token: int | None
) -> Ablation:
    if mode not in ("zero", "clamp", "scale"):
        raise DebuggerInputError(f"mode {mode!r} is not one of: zero, clamp, scale")
    if quadrant is not None and quadrant not in QUADRANT_SIGNS:
        raise DebuggerInputError(
            f"quadrant {quadrant!r} is not one of: " + ", ".join(QUADRANT_SIGNS)
        )
    signs = None if quadrant is None else QUADRANT_SIGNS[quadrant]
    if mode == "zero":
        return Ablation("mlp", layer, token, neuron, 0.0, signs=signs)
    return Ablation("mlp", layer, token, neuron, value, scale=mode == "scale", signs=signs)


def _tops(logits: torch.Tensor, k: int, tokens: Tokens) -> list[list[TokenProbability]]:
    """Each position's k most probable next tokens (one topk over [T, V])."""
    values, ids = torch.softmax(logits.float(), dim=-1).topk(min(k, logits.shape[-1]), dim=-1)
    names: dict[int, str] = {}
    out = []
    for row_values, row_ids in zip(values.tolist(), ids.tolist(), strict=True):
        row = []
        for p, i in zip(row_values, row_ids, strict=True):
            if i not in names:
                names[i] = tokens.tokenizer.decode([i])
            row.append(TokenProbability(token=names[i], token_id=i, probability=p))
        out.append(row)
    return out


def _next_token_loss(logits: torch.Tensor, ids: list[int]) -> list[float | None]:
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out: list[float | None] = [-float(logprobs[t, ids[t + 1]]) for t in range(len(ids) - 1)]
    return [*out, None]


def intervene(
    engine: Engine,
    tokens: Tokens,
    ids: list[int],
    layer: int,
    neuron: int,
    mode: Mode = "zero",
    value: float = 0.0,
    quadrant: str | None = None,
    token: int | None = None,
    direct_effect_token: int | None = None,
    top: int = 5,
) -> InterventionResult:
    """Two forward passes (as the text is, and with the intervention) on the model's thread."""
    engine.check_node("mlp", layer, neuron, token or 0, len(ids))
    ablation = intervention_ablation(layer, neuron, mode, value, quadrant, token)
    plain = Variant(tuple(ids), backward=False, observe_attention=False)  # the model's attention
    before = engine.run(plain)
    # the layers before the neuron's give what they gave: the second pass starts at its layer
    after = engine.run(replace(plain, ablations=(ablation,), replay=before.result,
                               replay_layers=layer))  # fmt: skip
    sign = engine.weights.signs[layer]
    sign = 1.0 if sign is None else float(sign[neuron])  # --refactor-glu's frame
    act_before = before.result.post[layer, :, neuron] * sign
    act_after = after.result.post[layer, :, neuron] * sign
    gate = before.result.gate[layer][:, neuron].tolist()
    in_ = (before.result.in_[layer][:, neuron] * sign).tolist()
    quadrants = [quadrant_of(g, u) for g, u in zip(gate, in_, strict=True)]
    loss_before = _next_token_loss(before.result.logits, ids)
    loss_after = _next_token_loss(after.result.logits, ids)
    top_before = _tops(before.result.logits, top, tokens)
    top_after = _tops(after.result.logits, top, tokens)
    effects = None
    if direct_effect_token is not None:
        effects = direct_effect_on_logit(before, layer, neuron, direct_effect_token).tolist()
    changes = []
    for t, id_ in enumerate(ids):
        lb, la = loss_before[t], loss_after[t]
        changes.append(
            TokenChange(
                token=tokens.tokenizer.decode([id_]),
                quadrant=quadrants[t],
                intervened=bool(
                    (token is None or t == token % len(ids))
                    and (quadrant is None or quadrants[t] == quadrant)
                ),
                activation_before=float(act_before[t]),
                activation_after=float(act_after[t]),
                loss_before=lb,
                loss_after=la,
                loss_change=None if lb is None or la is None else la - lb,
                top_before=top_before[t],
                top_after=top_after[t],
                direct_effect=None if effects is None else effects[t],
            )
        )
    deltas = [c.loss_change for c in changes if c.loss_change is not None]
    return InterventionResult(
        model=engine.runner.metadata.short_name,
        layer=layer,
        neuron=neuron,
        mode=mode,
        value=0.0 if mode == "zero" else value,
        quadrant=quadrant,
        direct_effect_token=None
        if direct_effect_token is None
        else tokens.tokenizer.decode([direct_effect_token]),
        tokens=changes,
        mean_loss_change=sum(deltas) / len(deltas) if deltas else None,
    )


def direct_effect_on_logit(store: Scalars, layer: int, neuron: int, token_id: int) -> torch.Tensor:
    """[T]: the neuron's write at each token through the final norm (its scale fixed at the
    pass's value) to one token's logit: act · W_out[i] · (s · γ ⊙ W_U[token])."""
    weights = store.weights
    reading = weights.unembedding[token_id] * store.result.final_scale[:, None]  # [T, D]
    return store.result.post[layer, :, neuron] * (reading @ weights.out[layer, neuron])
