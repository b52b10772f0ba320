"""Weight views on hand-built weights: neurons whose gate, in and out vectors have chosen cosines
(one neuron per IO class), an unembedding made so that three neurons are a prediction, a
suppression and a partition neuron; every class, family and token list checked against the rule
and the matrix products written here."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from transformers import AutoModelForCausalLM

import registry
from activations.api import Session
from activations.models.adapters import find_mlp_sites
from activations.weights.classes import approx
from activations.weights.compute import weight_views
from activations.weights.store import METADATA_KEY, WeightTable
from tests.tiny import make_tiny_model

# (cos(gate, in), cos(gate, out), cos(in, out)) → the class the rule gives
CHOSEN = [
    ((0.9, 0.9, 0.9), "strengthening"),
    ((0.0, 0.7, 0.7), "atypical strengthening"),
    ((0.0, 0.0, 0.9), "conditional strengthening"),
    ((0.9, 0.3, 0.6), "atypical conditional strengthening"),
    ((0.0, 0.9, 0.0), "proportional change"),
    ((0.9, 0.7, 0.4), "atypical proportional change"),
    ((0.9, 0.1, 0.1), "orthogonal output"),
    ((-0.9, 0.9, -0.9), "weakening"),
    ((0.0, 0.7, -0.7), "atypical weakening"),
    ((0.0, 0.0, -0.9), "conditional weakening"),
    ((0.9, -0.3, -0.6), "atypical conditional weakening"),
]
PREDICTION, SUPPRESSION, PARTITION = 11, 12, 13  # neurons of layer 0
SPIKE_TOKEN = 5


def vectors(gi: float, go: float, io: float, basis: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """gate, in, out with these cosines, in the span of three orthonormal rows of `basis`."""
    e1, e2, e3 = basis[0], basis[1], basis[2]
    beta = (io - gi * go) / math.sqrt(1 - gi * gi)
    gamma = math.sqrt(1 - go * go - beta * beta)
    gate = 2.0 * e1
    in_ = 0.5 * (gi * e1 + math.sqrt(1 - gi * gi) * e2)
    out = 3.0 * (go * e1 + beta * e2 + gamma * e3)
    return gate, in_, out


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory):
    folder = make_tiny_model("llama", tmp_path_factory.mktemp("hand-built") / "model", seed=4)
    model = AutoModelForCausalLM.from_pretrained(folder)
    torch.manual_seed(1)
    d = model.config.hidden_size
    basis = torch.linalg.qr(torch.randn(d, d))[0].T  # orthonormal rows
    mlp = model.model.layers[0].mlp
    scale = model.model.norm.weight
    with torch.no_grad():
        scale.copy_(torch.rand(d) + 0.5)
        for n, (cosines, _) in enumerate(CHOSEN):
            gate, in_, out = vectors(*cosines, basis)
            mlp.gate_proj.weight[n], mlp.up_proj.weight[n], mlp.down_proj.weight[:, n] = (
                gate,
                in_,
                out,
            )
        # the unembedding: half the vocabulary along +u, half along -u, one token along z
        u, z = basis[3], basis[4]
        vocab = model.lm_head.weight
        signs = torch.tensor([1.0 if t % 2 else -1.0 for t in range(vocab.shape[0])])
        vocab.copy_(signs[:, None] * u + 0.05 * torch.randn(vocab.shape))
        vocab[SPIKE_TOKEN] += 10 * z
        mlp.down_proj.weight[:, PREDICTION] = z / scale
        mlp.down_proj.weight[:, SUPPRESSION] = -z / scale
        mlp.down_proj.weight[:, PARTITION] = u / scale
    model.save_pretrained(folder)
    return folder, model


def test_every_class_and_cosine_follows_the_rule(hand_built):
    _, model = hand_built
    table = WeightTable(weight_views(model, find_mlp_sites(model)))
    for n, ((gi, go, io), name) in enumerate(CHOSEN):
        found = table.neuron(0, n)
        assert found["io_class"] == name, (n, found)
        assert (found["cos_gate_in"], found["cos_gate_out"], found["cos_in_out"]) == pytest.approx(
            (gi, go, io), abs=1e-5
        )
    # every neuron of every layer: the rule, from cosines computed here
    for site in find_mlp_sites(model):
        gate, in_ = (w.detach().double().numpy() for w in site.gate_in_weights())
        out = site.mlp.down_proj.weight.detach().double().numpy().T
        for n in range(out.shape[0]):
            cos = [_cos(gate[n], in_[n]), _cos(gate[n], out[n]), _cos(in_[n], out[n])]
            a = [int(approx(torch.tensor(c))) for c in cos]
            typical = int(a[0] == a[2] * a[1] or (a[2] == 0 and a[1] == 0))
            want = CLASSES[(a[2], abs(a[1]), typical)]
            assert table.neuron(site.layer, n)["io_class"] == want


CLASSES = {
    (1, 1, 1): "strengthening", (1, 1, 0): "atypical strengthening",
    (1, 0, 1): "conditional strengthening", (1, 0, 0): "atypical conditional strengthening",
    (0, 1, 1): "proportional change", (0, 1, 0): "atypical proportional change",
    (0, 0, 1): "orthogonal output", (-1, 1, 1): "weakening", (-1, 1, 0): "atypical weakening",
    (-1, 0, 1): "conditional weakening", (-1, 0, 0): "atypical conditional weakening",
}  # fmt: skip


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_cosine_of_one_half_rounds_to_zero():
    assert approx(torch.tensor([0.5, -0.5, 0.5001, -0.5001, 0.0])).tolist() == [0, 0, 1, -1, 0]


def test_token_lists_and_families_are_the_products(hand_built):
    _, model = hand_built
    table = WeightTable(weight_views(model, find_mlp_sites(model), top_k=5))
    unembed = model.lm_head.weight.detach().double().numpy()
    embed = model.model.embed_tokens.weight.detach().double().numpy()
    scale = model.model.norm.weight.detach().double().numpy()
    for site in find_mlp_sites(model):
        gate, in_ = (w.detach().double().numpy() for w in site.gate_in_weights())
        out = site.mlp.down_proj.weight.detach().double().numpy().T
        for n in range(out.shape[0]):
            found = table.neuron(site.layer, n)
            logits = unembed @ (scale * out[n])
            for name, values in (
                ("out", logits),
                ("gate", embed @ gate[n]),
                ("in", embed @ in_[n]),
            ):
                order = np.argsort(-values)
                if not values.any():  # a zero row (neurons 0 and 1 of tiny models): all tie
                    assert found[f"{name}_top_values"] == [0.0] * 5
                    continue
                assert found[f"{name}_top_ids"] == order[:5].tolist()
                assert found[f"{name}_bottom_ids"] == order[::-1][:5].tolist()
                assert found[f"{name}_top_values"] == pytest.approx(values[order[:5]], rel=1e-4)
            centred = logits - logits.mean()
            m2, m3, m4 = (np.mean(centred**k) for k in (2, 3, 4))
            skew, kurtosis = m3 / m2**1.5, m4 / m2**2
            assert (found["skew"], found["kurtosis"]) == pytest.approx((skew, kurtosis), rel=1e-3)
            family = (
                "prediction" if kurtosis >= 10 and skew >= 1
                else "suppression" if kurtosis >= 10 and skew <= -1
                else "partition" if kurtosis <= 2 else None
            )  # fmt: skip
            assert found["family"] == family
    assert table.neuron(0, PREDICTION)["family"] == "prediction"
    assert table.neuron(0, PREDICTION)["out_top_ids"][0] == SPIKE_TOKEN
    assert table.neuron(0, SUPPRESSION)["family"] == "suppression"
    assert table.neuron(0, SUPPRESSION)["out_bottom_ids"][0] == SPIKE_TOKEN
    assert table.neuron(0, PARTITION)["family"] == "partition"


def test_a_refactored_model_keeps_its_classes(hand_built):
    _, model = hand_built
    sites = find_mlp_sites(model)
    plain = WeightTable(weight_views(model, sites))
    flipped = WeightTable(weight_views(model, sites, refactored=True))
    assert flipped.metadata["refactored"]
    signs = []
    for n in range(len(CHOSEN)):
        a, b = plain.neuron(0, n), flipped.neuron(0, n)
        sign = -1 if a["cos_gate_in"] < 0 else 1  # GLUScope flips where gate·in < 0
        signs.append(sign)
        assert b["io_class"] == a["io_class"] and b["cos_in_out"] == pytest.approx(a["cos_in_out"])
        assert b["cos_gate_in"] == pytest.approx(sign * a["cos_gate_in"], abs=1e-6)
        assert b["cos_gate_out"] == pytest.approx(sign * a["cos_gate_out"], abs=1e-6)
    assert -1 in signs  # the test can tell


def test_views_through_the_api_and_their_cache(hand_built, tmp_path, monkeypatch):
    folder, _ = hand_built
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    registry.register_model("hand", str(folder))
    session = Session()
    view = session.weights("hand", 0, PREDICTION)  # at once, from the neuron's own vectors
    assert view.family == "prediction" and view.promotes[0].token_id == SPIKE_TOKEN
    assert view.promotes[0].token == "w2"  # id 5 in the tiny vocabulary
    assert view.io_class and len(view.opens_gate) == 10 and view.cos_gate_in is not None
    assert view.folded and view.raw.io_class  # the tiny model's norm scales are ones
    assert session.classes("hand").state == "ready"  # waits for the model's table
    assert session.weights("hand", 0, PREDICTION) == view  # now read from it: the same
    (cached,) = (tmp_path / "home" / "weights").iterdir()
    assert (
        cached.name.startswith("hand-")
        and METADATA_KEY in pa.ipc.open_file(pa.memory_map(str(cached))).schema.metadata
    )  # the file the next session reads, with how it was made
    again = Session()  # a new process would read the file: no computing
    again.weight_views._start = None  # would fail if called
    assert again.weights("hand", 0, PREDICTION) == view
    counts = again.classes("hand")
    assert counts.state == "ready" and counts.layers == [0, 1] and counts.neurons_per_layer == 24
    assert [sum(c[i] for c in counts.classes.values()) for i in range(2)] == [24, 24]
    assert counts.classes["weakening"][0] >= 1 and counts.families["prediction"][0] >= 1
