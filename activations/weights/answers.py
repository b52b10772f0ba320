"""What the weight views answer, as the Python API gives them and the server returns them."""

from __future__ import annotations

from pydantic import Field

from registry.metadata import CamelModel


class TokenScore(CamelModel):
    token: str
    token_id: int
    value: float


class NeuronWeightView(CamelModel):
    model: str
    layer: int
    neuron: int
    cos_gate_in: float | None
    cos_gate_out: float | None
    cos_in_out: float
    io_class: str = Field(description="its class from the three cosines (GLUScope's RW classes)")
    skew: float = Field(description="of W_U · (norm scale ⊙ w_out) over the vocabulary")
    kurtosis: float
    family: str | None = Field(description="prediction, suppression or partition, else none")
    promotes: list[TokenScore] = Field(
        description="tokens whose logits its output raises most when it is positive (lowers "
        "most when negative)"
    )
    suppresses: list[TokenScore] = Field(
        description="tokens whose logits it lowers most when positive (raises most when negative)"
    )
    opens_gate: list[TokenScore] = Field(description="embeddings that most open its gate")
    closes_gate: list[TokenScore]
    drives_in_up: list[TokenScore] = Field(description="embeddings that most raise its in")
    drives_in_down: list[TokenScore]
    refactored: bool = Field(description="in and out are of the refactored model")


class ClassCounts(CamelModel):
    model: str
    state: str = Field(description="ready, or computing (counts follow when it is done)")
    note: str | None = None
    layers: list[int] = Field(default_factory=list)
    neurons_per_layer: int | None = None
    classes: dict[str, list[int]] = Field(default_factory=dict, description="per layer")
    families: dict[str, list[int]] = Field(default_factory=dict, description="per layer")
