"""Neuron records: GET /neuron_record/..., from every registered dataset through its record
source. (neuron-explainer's POST /neuron_record is routes/neuron_explainer.py's.)"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator

from activation_server.errors import hide_paths, shown_metadata
from activation_server.services import Services, services
from activations.api import GluNeuronRecord, NeuronRecordResponse
from activations.session import NOT_KEPT, RecordQuery
from registry import (
    find_model,
    get_neuron_dataset_metadata_by_short_name_and_dst,
    is_registered,
)

router = APIRouter(tags=["records"])


def _digits(value: object) -> object:
    """A path or query integer as written by people: digits 0-9 only (not 1.0, +1, 1_0)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be a whole number written with the digits 0-9 only")


Digits = Annotated[int, BeforeValidator(_digits)]
Layer = Annotated[Digits, Path(ge=0, le=1_000_000, description="zero-based layer index")]
Neuron = Annotated[Digits, Path(ge=0, le=100_000_000, description="zero-based neuron index")]
Name = Annotated[str, Path(max_length=200)]
RecordAnswer = GluNeuronRecord | NeuronRecordResponse


def json_response(content: object) -> Response:
    """orjson straight to bytes: records are plain dicts, already JSON-ready."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _dumped(record: RecordAnswer) -> Response:
    return json_response(record.model_dump(mode="json", by_alias=True))


async def answer_record(
    services: Services,
    request: Request,
    short_name: str,
    dst: str,
    layer: int,
    neuron: int,
    query: RecordQuery,
    with_weights: bool = False,
) -> Response:
    metadata = get_neuron_dataset_metadata_by_short_name_and_dst(short_name, dst)
    source = services.sources.get(metadata)
    version = source.version()  # before reading: a change meanwhile makes the answer stale
    if version is not NOT_KEPT and not (query.context or with_weights):
        query = replace(query, kept=False)  # its answer is kept as bytes, below
    # assembled as the Python API assembles it (activations.session.Workbench.record)
    record = await services.workbench.record(metadata, layer, neuron, query, with_weights)
    if isinstance(record, GluNeuronRecord):  # the server's own paths stay its own
        expose = services.settings.expose_paths
        update: dict = {"dataset": shown_metadata(record.dataset, expose)}
        if record.weights_note and not expose:
            update["weights_note"] = hide_paths(record.weights_note)
        record = record.model_copy(update=update)
    # Built from validated models: dumped here without validating them again on the way out;
    # a record with example text (megabytes) off the event loop, which other requests share
    if query.context or query.all_hooks:
        response = await asyncio.to_thread(_dumped, record)
    else:
        response = _dumped(record)
    notes = (getattr(record, "context_note", None), getattr(record, "weights_note", None))
    if version is not NOT_KEPT and notes == (None, None):
        model = find_model(metadata.model)  # example text and values are the model's

        def still_holds() -> bool:
            return (
                is_registered(metadata)
                and find_model(metadata.model) is model
                and source.version() == version
            )

        services.answers.put(request.scope, response.body, still_holds)
    return response


@router.get("/neuron_record/{short_name}/{dst}/{layer}/{neuron}", response_model=RecordAnswer)
async def get_neuron_record(
    short_name: Name,
    dst: Name,
    layer: Layer,
    neuron: Neuron,
    request: Request,
    s: Annotated[Services, Depends(services)],
    hooks: Annotated[str, Query(pattern="^(dst|all)$")] = "dst",
    context: Annotated[Digits, Query(ge=0, le=1024)] = 0,
    activations: bool = False,
    weights: bool = False,
) -> Response:
    """A neuron's record. GLU datasets: per quadrant its freq, means and top examples for the
    hook `dst` names (`hooks=all` for every hook); `context=N` adds each example's text around
    its max, `activations=true` the neuron's values on it, `weights=true` what it reads and
    writes from the model's weights (routes/weights.py). neuron-explainer datasets: its shape
    (`dataset`, `maxActivation`, `topActivations`, `randomSample`)."""
    query = RecordQuery(all_hooks=hooks == "all", context=context, activations=activations)
    return await answer_record(s, request, short_name, dst, layer, neuron, query, weights)
