"""neuron-explainer's API, as its own viewer (neuron_viewer) calls it: records of a neuron or an
attention head from a list of datasets tried in order, the list of datasets, and clear 501s for
what this server does not do (explanations; the debugger's inference routes are routes/debugger.py).

Bodies and answers follow its activation server (read_routes.py, load_neurons.py): camelCase,
`NodeIdAndDatasets` requests, token sequences of {token, scalar, normalizedScalar}."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AliasChoices, Field, StrictInt

from activation_server.errors import hide_paths, shown_strings
from activation_server.services import Services, services
from activations.api import ExplainerAttentionRecord, ExplainerRecord
from activations.errors import RecordNotFoundError
from activations.session import RecordSource, public_name
from registry import get_all_neuron_dataset_metadata, resolve_dataset
from registry.errors import UnknownDatasetError
from registry.metadata import CamelModel, NeuronDatasetMetadata
from registry.vocabulary import NEURON_EXPLAINER_VIEWER_DSTS, DerivedScalarType

router = APIRouter(tags=["neuron-explainer"])


class NodeIdAndDatasets(CamelModel):
    """neuron-explainer's request for one node's record (load_neurons.NodeIdAndDatasets)."""

    dst: DerivedScalarType
    layer_index: StrictInt = Field(ge=0, le=1_000_000)
    activation_index: StrictInt = Field(ge=0, le=100_000_000)
    datasets: list[Annotated[str, Field(max_length=2000)]] = Field(default=[], max_length=32)
    """Registered short names, or paths/URLs equal to a registered dataset's path; tried in
    order, the first that has the node answers."""
    short_name: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=AliasChoices("shortName", "short_name", "datasetName", "dataset_name"),
    )
    """This server's older field: one short name (used where `datasets` is empty)."""

    def references(self) -> list[str]:
        if self.datasets:
            return list(self.datasets)
        if self.short_name:
            return [self.short_name]
        candidates = [
            d.short_name
            for d in get_all_neuron_dataset_metadata()
            if d.derived_scalar_type == self.dst
        ]
        if len(candidates) == 1:
            return candidates
        raise UnknownDatasetError(
            f'give "datasets": the datasets of type "{self.dst.value}" are: '
            + ", ".join(f'"{c}"' for c in candidates)
        )


async def first_with_node(
    s: Services, body: NodeIdAndDatasets, read: Callable[[RecordSource], Awaitable[Any]]
) -> Any:
    """neuron-explainer's load_neuron_from_datasets: every name resolved first (an unknown one
    is an error, never a fallback), then tried in order; the first that has the node answers."""
    sources = [s.sources.get(resolve_dataset(ref, body.dst)) for ref in body.references()]
    tried = []
    for source in sources:
        try:
            return await read(source)
        except RecordNotFoundError as error:
            tried.append(f"{public_name(source.metadata)} ({error})")
    node = f"{body.dst.value} {body.layer_index}:{body.activation_index}"
    raise RecordNotFoundError(f"Could not find {node} in: " + "; ".join(tried))


@router.post("/neuron_record", response_model=ExplainerRecord)
async def neuron_record(
    body: NodeIdAndDatasets, s: Annotated[Services, Depends(services)]
) -> ExplainerRecord:
    """One neuron's (or latent's) record in neuron-explainer's shape: its top and random token
    sequences. GLU datasets answer it too: the top examples of the hook the type names, with
    the neuron's values, and a random sample of documents (`note` says what is missing)."""
    layer, neuron = body.layer_index, body.activation_index
    found = await first_with_node(s, body, lambda source: source.explainer_record(layer, neuron))
    return shown_strings(found, s.settings.expose_paths)


@router.post("/attention_head_record", response_model=ExplainerAttentionRecord)
async def attention_head_record(
    body: NodeIdAndDatasets, s: Annotated[Services, Depends(services)]
) -> ExplainerAttentionRecord:
    """An attention head's (or a latent's) record by token pair, in neuron-explainer's shape."""
    layer, head = body.layer_index, body.activation_index
    found = await first_with_node(s, body, lambda source: source.attention_record(layer, head))
    return shown_strings(found, s.settings.expose_paths)


@router.post("/neuron_datasets_metadata", response_model=list[NeuronDatasetMetadata])
async def neuron_datasets_metadata(
    s: Annotated[Services, Depends(services)],
) -> list[NeuronDatasetMetadata]:
    """The datasets neuron-explainer's welcome page lists: those of the types its viewer knows
    (it fails on others); GLU datasets of mlp_post_act among them."""
    found = [
        d
        for d in get_all_neuron_dataset_metadata()
        if d.derived_scalar_type in NEURON_EXPLAINER_VIEWER_DSTS
    ]
    if s.settings.expose_paths:
        return found
    return [
        d.model_copy(update={"neuron_dataset_path": hide_paths(d.neuron_dataset_path)})
        for d in found
    ]
