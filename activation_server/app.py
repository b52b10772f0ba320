"""The FastAPI app: neuron records from every registered dataset, and live activations."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
from fastapi import FastAPI, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from activation_server.errors import TooManyTokensError, install_error_handlers
from activation_server.glu_records import GluRecordService
from activation_server.runners import MicroBatcher, RunnerPool
from activation_server.schemas import (
    ActivationsRequest,
    ActivationsResponse,
    NeuronRecordRequest,
    NeuronTraceBody,
    TextTraceBody,
)
from activation_server.settings import ServerSettings
from activation_server.viewer import install_viewer
from activations.derived_scalars import DST_TO_HOOK, DerivedScalarType
from activations.live import LiveRequest
from registry import (
    DatasetFormat,
    get_all_models,
    get_all_neuron_dataset_metadata,
    get_neuron_dataset_metadata_by_short_name_and_dst,
)
from registry.errors import UnknownDatasetError

Layer = Annotated[int, Path(ge=0, le=1_000_000, description="zero-based layer index")]
Neuron = Annotated[int, Path(ge=0, le=100_000_000, description="zero-based neuron index")]
Name = Annotated[str, Path(max_length=200)]


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    runners = RunnerPool(settings)
    batcher = MicroBatcher(settings)
    glu = GluRecordService(runners, settings.record_cache_size, settings.max_context)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()
        await app.state.tdb.close()

    app = FastAPI(
        title="GLU neuron activation server",
        description="Neuron records and live activations of gated (GLU) language models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runners = runners
    app.state.batcher = batcher
    app.state.glu = glu
    app.state.tdb = _tdb_service(settings)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse(
                status_code=413,
                content={
                    "detail": f"request body over the limit of {settings.max_body_bytes} bytes"
                },
            )
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "modelsLoaded": runners.loaded(),
            "liveBatches": batcher.batches_run,
            "liveRequests": batcher.requests_run,
        }

    @app.get("/datasets")
    async def datasets(
        model: Annotated[str | None, Query(max_length=200)] = None,
        dst: DerivedScalarType | None = None,
    ) -> list[dict]:
        found = get_all_neuron_dataset_metadata()
        if model:
            found = [d for d in found if model in (d.model, d.short_name)]
        if dst:
            found = [d for d in found if d.derived_scalar_type == dst]
        return [d.model_dump(mode="json", by_alias=True) for d in found]

    @app.get("/models")
    async def models() -> list[dict]:
        return [m.model_dump(mode="json", by_alias=True) for m in get_all_models()]

    async def neuron_record(short_name, dst, layer, neuron, hooks, context, activations):
        metadata = get_neuron_dataset_metadata_by_short_name_and_dst(short_name, dst)
        if metadata.format == DatasetFormat.GLU_PARQUET:
            record = await glu.record(metadata, layer, neuron, hooks == "all", context, activations)
            return json_response(record.model_dump(mode="json", by_alias=True))
        return json_response(await app.state.tdb.record(metadata, layer, neuron))

    @app.get("/neuron_record/{short_name}/{dst}/{layer}/{neuron}")
    async def get_neuron_record(
        short_name: Name,
        dst: Name,
        layer: Layer,
        neuron: Neuron,
        hooks: Annotated[str, Query(pattern="^(dst|all)$")] = "dst",
        context: Annotated[int, Query(ge=0, le=1024)] = 0,
        activations: bool = False,
    ) -> Response:
        """A neuron's record. GLU datasets: per quadrant its freq, means and top examples for
        the hook `dst` names (`hooks=all` for every hook); `context=N` adds each example's text
        around its max, `activations=true` the neuron's values on it."""
        return await neuron_record(short_name, dst, layer, neuron, hooks, context, activations)

    @app.post("/neuron_record")
    async def post_neuron_record(body: NeuronRecordRequest) -> Response:
        """neuron-explainer's request shape."""
        short_name = body.short_name or body.dataset_name
        if short_name is None:
            candidates = [
                d.short_name
                for d in get_all_neuron_dataset_metadata()
                if d.derived_scalar_type == body.dst
            ]
            if len(candidates) != 1:
                raise UnknownDatasetError(
                    f'give "shortName": datasets of type "{body.dst.value}" are: '
                    + ", ".join(f'"{c}"' for c in candidates)
                )
            short_name = candidates[0]
        return await neuron_record(
            short_name, body.dst, body.layer_index, body.activation_index, "dst", 0, False
        )

    @app.post("/activations", response_model=ActivationsResponse)
    async def activations(body: ActivationsRequest) -> ActivationsResponse:
        """Per-token values of a layer's neurons on any text (and each token's quadrant)."""
        texts = body.all_texts
        if len(texts) > settings.max_texts_per_request:
            raise TooManyTokensError(
                f"{len(texts)} texts in one request; the limit is {settings.max_texts_per_request}"
            )
        runner = runners.get(body.model)
        request = LiveRequest(
            texts=tuple(texts),
            layer=body.layer,
            dst=body.dst,
            neurons=tuple(body.neurons) if body.neurons is not None else None,
            top_k=body.top_k,
        )
        await asyncio.to_thread(runner.validate, request)
        limit = settings.max_tokens_per_request
        for i, text in enumerate(texts):
            if len(text) > limit * 64:  # cheap bound before tokenizing huge inputs
                raise TooManyTokensError(f"text {i} is over the limit of {limit} tokens")
            n = await asyncio.to_thread(runner.count_tokens, text)
            if n > limit:
                raise TooManyTokensError(f"text {i} has {n} tokens; the limit is {limit}")
        traces = await batcher.submit(runner, request)
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

    install_viewer(app)
    return app


def json_response(content: object) -> Response:
    """orjson straight to bytes: records are plain dicts, already JSON-ready."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _tdb_service(settings: ServerSettings):
    from activation_server.tdb_records import TdbRecordService

    return TdbRecordService(settings)
