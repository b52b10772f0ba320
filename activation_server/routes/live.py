"""Live activations: POST /activations runs a registered model on any text, micro-batched."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends

from activation_server.errors import TooManyTokensError
from activation_server.schemas import (
    ActivationsRequest,
    ActivationsResponse,
    NeuronTraceBody,
    TextTraceBody,
)
from activation_server.services import Services, services
from activations.session import LiveRequest, ModelRunner
from registry.vocabulary import DST_TO_HOOK

router = APIRouter(tags=["live"])


async def check_token_limits(s: Services, runner: ModelRunner, texts: list[str]) -> list[int]:
    """413 for a text over the server's token limit (a cheap bound on characters first);
    returns each text's tokens."""
    limit = s.settings.max_tokens_per_request
    for i, text in enumerate(texts):
        if len(text) > limit * 64:  # cheap bound before tokenizing huge inputs
            raise TooManyTokensError(f"text {i} is over the limit of {limit} tokens")
    counts = await s.pools.live.run(lambda: [runner.count_tokens(t) for t in texts])
    for i, n in enumerate(counts):
        if n > limit:
            raise TooManyTokensError(f"text {i} has {n} tokens; the limit is {limit}")
    return counts


@router.post("/activations", response_model=ActivationsResponse)
async def activations(
    body: ActivationsRequest, s: Annotated[Services, Depends(services)]
) -> ActivationsResponse:
    """Per-token values of a layer's neurons on any text (and each token's quadrant);
    `topNeurons` picks the neurons of largest max |value| over the texts."""
    settings = s.settings
    texts = body.all_texts
    if len(texts) > settings.max_texts_per_request:
        raise TooManyTokensError(
            f"{len(texts)} texts in one request; the limit is {settings.max_texts_per_request}"
        )
    runner = s.models.get(body.model)
    request = LiveRequest(
        texts=tuple(texts),
        layer=body.layer,
        dst=body.dst,
        neurons=tuple(body.neurons) if body.neurons is not None else None,
        top_neurons=body.top_neurons,
    )
    await s.pools.live.run(runner.validate, request)
    counts = await check_token_limits(s, runner, texts)
    request = dataclasses.replace(request, n_tokens=sum(counts))
    traces = await s.models.live(body.model, request)
    return ActivationsResponse(
        model=body.model,
        layer=body.layer,
        dst=body.dst,
        hook=DST_TO_HOOK[body.dst],
        results=[
            TextTraceBody(
                tokens=t.tokens,
                token_ids=t.token_ids,
                neurons=[NeuronTraceBody(**vars(n)) for n in t.neurons],
            )
            for t in traces
        ],
    )
