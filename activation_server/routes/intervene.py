"""Interventions and attributions for our viewer and any client: POST /intervene (zero, clamp or
scale a neuron on a text, optionally only in one GLU quadrant: the next-token distribution
before and after and the loss change at each token, and its direct effect on a token's logit)
and POST /attribute (each layer's top neurons and heads by act × grad of a logit difference).
Both run on the model's worker thread with its live requests (503 when its queue is full)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import Field

from activation_server.routes.live import check_token_limits
from activation_server.services import Services, services
from activations.api import (
    AttributionResult,
    InterventionResult,
    run_attribution,
    run_intervention,
)
from registry.metadata import CamelModel

router = APIRouter(tags=["debugger"])
Text = Annotated[str, Field(min_length=1, max_length=100_000)]
Name = Annotated[str, Field(max_length=200)]
Token = Annotated[str, Field(min_length=1, max_length=200)]


class InterventionRequest(CamelModel):
    model: Name
    text: Text
    layer: int = Field(ge=0, le=100_000)
    neuron: int = Field(ge=0, le=100_000_000)
    mode: Literal["zero", "clamp", "scale"] = "zero"
    value: float = Field(default=0.0, ge=-1e6, le=1e6)
    """The clamped value (clamp) or the factor (scale)."""
    quadrant: str | None = Field(default=None, max_length=20)
    """Only where the neuron's (gate, in) signs are this quadrant's (gate+_in+, ...)."""
    token: int | None = Field(default=None, ge=-100_000, le=100_000)
    """Only at this token (negative: from the end); every token where None."""
    direct_effect_token: Token | None = None
    top: int = Field(default=5, ge=1, le=50)


class AttributionRequest(CamelModel):
    model: Name
    text: Text
    target: Token
    distractor: Token | None = None
    top: int = Field(default=10, ge=1, le=100)


@router.post("/intervene", response_model=InterventionResult)
async def intervene(
    body: InterventionRequest, s: Annotated[Services, Depends(services)]
) -> InterventionResult:
    """Two forward passes: the text as it is, and with the neuron zeroed, clamped or scaled."""
    await check_token_limits(s, s.models.get(body.model), [body.text])
    return await run_intervention(
        s.models, body.model, body.text, body.layer, body.neuron, body.mode, body.value,
        body.quadrant, body.token, body.direct_effect_token, body.top,
    )  # fmt: skip


@router.post("/attribute", response_model=AttributionResult)
async def attribute(
    body: AttributionRequest, s: Annotated[Services, Depends(services)]
) -> AttributionResult:
    """One forward and one backward pass of logit(target) − logit(distractor) at the last
    token: each layer's top and bottom neurons and heads by act × grad."""
    await check_token_limits(s, s.models.get(body.model), [body.text])
    return await run_attribution(
        s.models, body.model, body.text, body.target, body.distractor, body.top
    )
