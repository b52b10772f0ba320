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

from activation_server.errors import hide_paths, known_error_response, shown_metadata
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
MAX_LAYER = 1_000_000
MAX_NEURON = 100_000_000
MAX_NAME = 200
Layer = Annotated[Digits, Path(ge=0, le=MAX_LAYER, description="zero-based layer index")]
Neuron = Annotated[Digits, Path(ge=0, le=MAX_NEURON, description="zero-based neuron index")]
Name = Annotated[str, Path(max_length=MAX_NAME)]
RecordAnswer = GluNeuronRecord | NeuronRecordResponse


def json_response(content: object) -> Response:
    """orjson straight to bytes: records are plain dicts, already JSON-ready."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _dumped(record: RecordAnswer) -> Response:
    """Pydantic's serializer straight to JSON (the same bytes as orjson of its dump, without
    the Python objects between)."""
    return Response(record.model_dump_json(by_alias=True), media_type="application/json")


async def answer_record(
    services: Services,
    scope: dict,
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

        services.answers.put(scope, response.body, still_holds)
    return response


# the route's path within its bounds (the numbers' lengths; their values are checked after)
_NAME, _LAYER, _NEURON = (
    f"{{1,{bound}}}" for bound in (MAX_NAME, len(str(MAX_LAYER)), len(str(MAX_NEURON)))
)
PLAIN_RECORD = re.compile(
    rf"/neuron_record/([^/]{_NAME})/([^/]{_NAME})/([0-9]{_LAYER})/([0-9]{_NEURON})"
)


async def plain_record_answer(services: Services, scope: dict) -> Response | None:
    """The answer to `GET /neuron_record/{short_name}/{dst}/{layer}/{neuron}` with no query,
    made without the router: the first thing every neuron page asks for, where routing and
    checking the path's parameters cost about as much as making the record from a decoded row
    group. An error of a known kind is answered as its handler answers it (an upstream's 504
    is not waited for twice); None for anything else: the route below then answers it, with
    its own checks and error messages."""
    if scope.get("query_string"):
        return None
    found = PLAIN_RECORD.fullmatch(scope["path"])
    if found is None:
        return None
    short_name, dst, layer, neuron = found[1], found[2], int(found[3]), int(found[4])
    if layer > MAX_LAYER or neuron > MAX_NEURON:
        return None
    try:
        return await answer_record(
            services, scope, short_name, dst, layer, neuron, RecordQuery(), False
        )
    except Exception as error:  # noqa: BLE001 - unknown kinds: the route answers it anew
        return known_error_response(error, services.settings.expose_paths)


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
    return await answer_record(s, request.scope, short_name, dst, layer, neuron, query, weights)
