"""What a neuron reads and writes, from its model's weights alone: GET /weights/{model}/{layer}/
{neuron} (cosines, IO class, vocabulary family, token lists) and GET /classes/{model} (the class
and family counts per layer). A model's views are computed once (a few minutes for a small model
on a CPU), answered 503 with how far it has come meanwhile, and kept under $NEURONS_HOME."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from activation_server.routes.records import Layer, Name, Neuron
from activation_server.services import Services, services
from activations.weights.answers import ClassCounts, NeuronWeightView

router = APIRouter(tags=["weights"])
Model = Annotated[str, Path(max_length=200)]


@router.get("/weights/{model}/{layer}/{neuron}", response_model=NeuronWeightView)
async def neuron_weights(
    model: Model, layer: Layer, neuron: Neuron, s: Annotated[Services, Depends(services)]
) -> NeuronWeightView:
    """A neuron's cosines (gate·in, gate·out, in·out), IO class, vocabulary family and tokens:
    those it promotes and suppresses through the unembedding, those whose embeddings open its
    gate and drive its in. 503 while the model's views are being computed."""
    return await s.pools.cpu.run(s.weights.view, model, layer, neuron)


@router.get("/classes/{model}", response_model=ClassCounts)
async def class_counts(model: Name, s: Annotated[Services, Depends(services)]) -> ClassCounts:
    """How many neurons of each layer are of each IO class and vocabulary family; `state` is
    `computing` (with a note) until the model's views exist."""
    return await s.pools.cpu.run(s.weights.counts, model)
