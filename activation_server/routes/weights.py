"""What a neuron reads and writes, from its model's weights alone: GET /weights/{model}/{layer}/
{neuron} (cosines, IO class, vocabulary family, token lists) and GET /classes/{model} (the class
and family counts per layer). A neuron's view is answered at once, from its own vectors; the
model's table is computed once in the background (a minute or more for a small model on a CPU:
the counts say how far it has come meanwhile) and kept under $NEURONS_HOME."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from activation_server.routes.records import Layer, Name, Neuron
from activation_server.services import Services, services
from activations.api import ClassCounts, NeuronWeightView

router = APIRouter(tags=["weights"])
Model = Annotated[str, Path(max_length=200)]


@router.get("/weights/{model}/{layer}/{neuron}", response_model=NeuronWeightView)
async def neuron_weights(
    model: Model, layer: Layer, neuron: Neuron, s: Annotated[Services, Depends(services)]
) -> NeuronWeightView:
    """A neuron's cosines (gate·in, gate·out, in·out), IO class, vocabulary family and tokens:
    those it promotes and suppresses through the unembedding, those whose embeddings open its
    gate and drive its in; gate and in through the pre-MLP norm's scale (`folded`), the raw
    rows' cosines and class in `raw`. At once, the model's table being computed meanwhile."""
    return await s.pools.cpu.run(s.weights.view, model, layer, neuron)


@router.get("/classes/{model}", response_model=ClassCounts)
async def class_counts(model: Name, s: Annotated[Services, Depends(services)]) -> ClassCounts:
    """How many neurons of each layer are of each IO class and vocabulary family; `state` is
    `computing` (with a note and the layers done so far) until the model's views exist."""
    return await s.pools.cpu.run(s.weights.counts, model)
