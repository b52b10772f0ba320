"""transformer-debugger's inference routes (its inference_routes.py) for any registered model:
POST /model_info, /derived_scalars, /derived_attention_scalars, /multiple_top_k_derived_scalars,
/batched and /batched_tdb, under /tdb/{short_name}/ for each model and at the root for the
server's debugger model (settings.debugger_model, the embedded one by default).

TDB's frontend names no model in its requests: built with `NEURON_VIEWER_ACTIVATION_SERVER_URL`
= http://host:port/tdb/{short_name} it debugs that model. Each request's passes run on the
model's own worker thread, queued with its live requests (503 with Retry-After when the queue is
full); nothing a request does outlives it (ablations are values of its passes).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from activation_server.debugger import wire as w
from activation_server.debugger.batched import Maxima, answer
from activation_server.debugger.convert import from_tdb
from activation_server.routes.live import check_token_limits
from activation_server.routes.neuron_explainer import NodeIdAndDatasets, first_with_node
from activation_server.services import Services, services
from activations.errors import RecordNotFoundError
from activations.session import engine_of
from registry.errors import UnknownDatasetError

router = APIRouter(tags=["debugger"])
ModelName = Annotated[str, Path(max_length=200, description="a registered model's short name")]


async def _maximum(s: Services, node: NodeIdAndDatasets) -> float | None:
    """The largest activation of the node's record (TDB normalizes live values by it); None
    where no dataset has the record (values are then normalized by the prompt's own maximum)."""
    try:
        record = await first_with_node(
            s, node, lambda source: source.explainer_record(node.layer_index, node.activation_index)
        )
    except (RecordNotFoundError, UnknownDatasetError):
        return None
    return record.max_activation


async def run_batched(s: Services, model: str, request: w.BatchedRequest) -> w.BatchedResponse:
    runner = s.models.get(model)  # 404 naming the models for an unknown one
    prompts = [sub.inference_request_spec.prompt for sub in request.inference_sub_requests]
    await check_token_limits(s, runner, prompts)
    maxima: Maxima = {}
    for i, sub in enumerate(request.inference_sub_requests):
        for name, spec in sub.processing_request_spec_by_name.items():
            node = getattr(spec, "normalize_activations_using_neuron_record", None)
            if node is not None:
                maxima[(i, name)] = await _maximum(s, node)
    return await s.models.run(model, lambda r: answer(engine_of(r), r.tokens, request, maxima))


async def _single(s: Services, model: str, inference, name: str, spec):
    """A one-spec request, answered as a batch of one (as TDB does)."""
    request = w.BatchedRequest(
        inference_sub_requests=[
            w.InferenceSubRequest(
                inference_request_spec=inference, processing_request_spec_by_name={name: spec}
            )
        ]
    )
    sub = (await run_batched(s, model, request)).inference_sub_responses[0]
    return sub.inference_response.inference_and_token_data, sub.processing_response_data_by_name[
        name
    ]


async def model_info(s: Services, model: str) -> w.ModelInfoResponse:
    runner = s.models.get(model)
    n_layers = await s.models.run(model, lambda r: r.n_layers)
    return w.ModelInfoResponse(model_name=runner.metadata.short_name, n_layers=n_layers)


async def derived_scalars(s, model, body: w.DerivedScalarsRequest) -> w.DerivedScalarsResponse:
    data, spec = await _single(
        s, model, body.inference_request_spec, "derived_scalars_request_spec",
        body.derived_scalars_request_spec,
    )  # fmt: skip
    return w.DerivedScalarsResponse(inference_and_token_data=data,
                                    derived_scalars_response_data=spec)  # fmt: skip


async def derived_attention_scalars(
    s, model, body: w.DerivedAttentionScalarsRequest
) -> w.DerivedAttentionScalarsResponse:
    data, spec = await _single(
        s, model, body.inference_request_spec, "derived_attention_scalars_request_spec",
        body.derived_attention_scalars_request_spec,
    )  # fmt: skip
    return w.DerivedAttentionScalarsResponse(
        inference_and_token_data=data, derived_attention_scalars_response_data=spec
    )


async def multiple_top_k(
    s, model, body: w.MultipleTopKDerivedScalarsRequest
) -> w.MultipleTopKDerivedScalarsResponse:
    data, spec = await _single(
        s, model, body.inference_request_spec, "multiple_top_k_derived_scalars_request_spec",
        body.multiple_top_k_derived_scalars_request_spec,
    )  # fmt: skip
    return w.MultipleTopKDerivedScalarsResponse(
        inference_and_token_data=data, multiple_top_k_derived_scalars_response_data=spec
    )


async def batched(s, model, body: w.BatchedRequest) -> w.BatchedResponse:
    return await run_batched(s, model, body)


async def batched_tdb(s, model, body: w.BatchedTdbRequest) -> w.BatchedResponse:
    subs = [from_tdb(spec) for spec in body.sub_requests]
    return await run_batched(s, model, w.BatchedRequest(inference_sub_requests=subs))


ROUTES = [
    ("/model_info", model_info, None, w.ModelInfoResponse),
    ("/derived_scalars", derived_scalars, w.DerivedScalarsRequest, w.DerivedScalarsResponse),
    ("/derived_attention_scalars", derived_attention_scalars,
     w.DerivedAttentionScalarsRequest, w.DerivedAttentionScalarsResponse),
    ("/multiple_top_k_derived_scalars", multiple_top_k,
     w.MultipleTopKDerivedScalarsRequest, w.MultipleTopKDerivedScalarsResponse),
    ("/batched", batched, w.BatchedRequest, w.BatchedResponse),
    ("/batched_tdb", batched_tdb, w.BatchedTdbRequest, w.BatchedResponse),
]  # fmt: skip


def _add(path: str, handler, body_type, response, at_root: bool) -> None:
    """One route at /tdb/{short_name}{path} or at the root (the debugger model)."""
    if body_type is None:
        if at_root:

            async def route(s: Annotated[Services, Depends(services)]):
                return await handler(s, s.settings.debugger_model)
        else:

            async def route(short_name: ModelName, s: Annotated[Services, Depends(services)]):
                return await handler(s, short_name)
    elif at_root:

        async def route(body: body_type, s: Annotated[Services, Depends(services)]):  # type: ignore[valid-type]
            return await handler(s, s.settings.debugger_model, body)
    else:

        async def route(
            short_name: ModelName,
            body: body_type,  # type: ignore[valid-type]
            s: Annotated[Services, Depends(services)],
        ):
            return await handler(s, short_name, body)

    where = "the server's debugger model" if at_root else "the model {short_name}"
    router.add_api_route(
        path if at_root else "/tdb/{short_name}" + path,
        route,
        methods=["POST"],
        response_model=response,
        summary=f"TDB {path} of {where}",
        description=(handler.__doc__ or "") + "\n\n" + __doc__.split("\n\n")[0],
    )


for _path, _handler, _body, _response in ROUTES:
    _add(_path, _handler, _body, _response, at_root=True)
    _add(_path, _handler, _body, _response, at_root=False)
