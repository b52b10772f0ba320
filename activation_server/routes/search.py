"""Finding neurons: POST /search/prompt (the top neurons of every layer on a text, or at one of
its tokens) and GET /search/token/{short_name}/{dst} (the neurons whose top examples peak on a
token). Both answer with activations.search's models, as the Python API does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activation_server.routes.live import check_token_limits
from activation_server.routes.records import Digits
from activation_server.schemas import PromptSearchRequest
from activation_server.services import Services, services
from activations.api import PromptSearchResult, TokenSearchResult
from registry import get_neuron_dataset_metadata_by_short_name_and_dst

router = APIRouter(tags=["search"])


@router.post("/search/prompt", response_model=PromptSearchResult)
async def search_prompt(
    body: PromptSearchRequest, s: Annotated[Services, Depends(services)]
) -> PromptSearchResult:
    """The `topNeurons` neurons of all the model's layers by |value| of `dst` over the text, or
    at `tokenIndex`: one forward pass, queued with the model's live requests. Each hit has its
    layer, neuron, value, token, quadrant and, where a dataset of the model and type is
    registered, its page."""
    runner = s.models.get(body.model)
    await check_token_limits(s, runner, [body.text])
    return await s.searches.prompt(
        body.model, body.text, body.dst, body.token_index, body.top_neurons, body.skip_first,
        body.dataset,
    )  # fmt: skip


@router.get("/search/token/{short_name}/{dst}", response_model=TokenSearchResult)
async def search_token(
    short_name: str,
    dst: str,
    s: Annotated[Services, Depends(services)],
    token: Annotated[str | None, Query(max_length=200, description="one token's text")] = None,
    token_id: Annotated[Digits | None, Query(alias="tokenId", ge=0)] = None,
    top: Annotated[Digits, Query(ge=1, le=1000)] = 20,
) -> TokenSearchResult:
    """The neurons of a dataset whose stored top examples peak on the token (given as text,
    e.g. ` king`, or as `tokenId`), most such examples first, then by largest |value|. Needs
    the positions of the examples' maxima (files collated here have them) and the corpus; the
    index is built on first use and kept beside the records."""
    metadata = get_neuron_dataset_metadata_by_short_name_and_dst(short_name, dst)
    return await s.searches.token(metadata, token, token_id, top)
