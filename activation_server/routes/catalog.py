"""What the server knows: GET /datasets (with each dataset's shape), /models, /schema, /health."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activation_server.errors import hide_paths, shown_metadata
from activation_server.schemas import DatasetEntry, HealthResponse, SchemaResponse
from activation_server.services import Services, services
from activations.errors import RecordError
from activations.session import RecordSource
from registry import (
    ModelMetadata,
    get_all_models,
    get_all_neuron_dataset_metadata,
)
from registry.metadata import describe_vocabulary
from registry.vocabulary import DerivedScalarType

router = APIRouter(tags=["catalog"])


async def _entry(source: RecordSource, open_it: bool, s: Services) -> DatasetEntry:
    timeout_s = s.settings.upstream_timeout_s
    shape, note = await s.pools.local.run(source.known_shape)
    if shape is None and open_it:
        try:
            shape = await asyncio.wait_for(source.shape(), timeout_s)
            note = None if shape is not None else note
        except (RecordError, asyncio.TimeoutError) as error:
            note = str(error) or f"not opened within {timeout_s:g} s"
    if not s.settings.expose_paths:  # the server's own paths stay its own
        note = note and hide_paths(note)
        if shape is not None and shape.corpus:
            shape = shape.model_copy(update={"corpus": hide_paths(shape.corpus)})
    fields = shown_metadata(source.metadata, s.settings.expose_paths).model_dump()
    if fields.get("corpus") is None and shape is not None:  # the file names its corpus
        fields["corpus"] = shape.corpus
    return DatasetEntry(**fields, shape=shape, shape_note=note)


@router.get("/datasets", response_model=list[DatasetEntry])
async def datasets(
    s: Annotated[Services, Depends(services)],
    model: Annotated[str | None, Query(max_length=200)] = None,
    dst: DerivedScalarType | None = None,
    open: Annotated[bool, Query(description="open remote datasets to learn their shape")] = False,
) -> list[DatasetEntry]:
    """Registered datasets; each with its shape (layers, neurons per layer, top-k, hooks,
    corpus) where it is known without reading a remote file, or with `open=true`."""
    found = get_all_neuron_dataset_metadata()
    if model:
        found = [d for d in found if model in (d.model, d.short_name)]
    if dst:
        found = [d for d in found if d.derived_scalar_type == dst]
    return list(await asyncio.gather(*(_entry(s.sources.get(d), open, s) for d in found)))


@router.get("/models", response_model=list[ModelMetadata])
async def models() -> list[ModelMetadata]:
    return get_all_models()


@router.get("/schema", response_model=SchemaResponse)
async def schema() -> SchemaResponse:
    """The vocabulary: every GLU hook (its derived scalar type, label, card order) and every
    quadrant, as the server's records name them."""
    return describe_vocabulary()


@router.get("/health", response_model=HealthResponse)
async def health(s: Annotated[Services, Depends(services)]) -> HealthResponse:
    stats = s.models.stats()
    return HealthResponse(
        status="ok",
        models_loaded=s.models.loaded(),
        live_batches=stats["batches"],
        live_requests=stats["requests"],
    )
