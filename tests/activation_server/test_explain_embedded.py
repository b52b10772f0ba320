"""The whole path on the embedded SmolLM2-135M-Instruct, offline: explain (its own text, of
whatever quality) → score → store → /existing_explanations → the neuron page's route, for a
neuron-explainer dataset of Shakespeare passages whose neuron fires on pronouns; and its
simulator against a brute-force pass at a few slots."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.corpus import shakespeare_plays
from activations.explanations.local import LocalLM
from activations.explanations.prompts import simulation_prompt
from activations.models.loading import load_model
from registry.builtin import EMBEDDED_MODEL
from registry.locations import neurons_home

pytestmark = pytest.mark.slow
PRONOUNS = {" I", " me", " my", " you", " your", " he", " him", " his", " she", " her"}


def pronoun_record(tokenizer, n: int = 12) -> dict:
    """A neuron-explainer record: passages of 20 tokens, the neuron at 4 on pronouns."""
    _, play = next(iter(shakespeare_plays()))
    ids = tokenizer(play[:20_000], add_special_tokens=False).input_ids
    records = []
    for start in range(0, 20 * n * 3, 20):
        tokens = [tokenizer.decode([i]) for i in ids[start : start + 20]]
        values = [4.0 if t in PRONOUNS else 0.0 for t in tokens]
        records.append({"tokens": tokens, "activations": values})
    records.sort(key=lambda r: -sum(r["activations"]))
    return {
        "dataclass_name": "NeuronRecord",
        "neuron_id": {"dataclass_name": "NeuronId", "layer_index": 0, "neuron_index": 0},
        "most_positive_activation_records": records[:8],
        "random_sample": records[-6:],
    }


@pytest.fixture(scope="module")
def embedded():
    return load_model(registry.get_model(EMBEDDED_MODEL))


def test_its_simulator_matches_brute_force_at_every_slot(embedded):
    """A batch of prompts in one call (two of them sharing their first tokens, so that the
    shared cache reaches into the listed tokens) against full passes with no cache: a trained
    model reads its context, so any token that saw what it must not would show here."""
    model, tokenizer = embedded
    lm = LocalLM(model, tokenizer, EMBEDDED_MODEL)
    assert lm.ten_id is None and lm.one_zero is not None  # SmolLM2 writes "10" as "1", "0"
    batch = [
        [" O", " Romeo", ",", " Romeo", "!"],
        [" O", " Romeo", ",", " Juliet"],
        [" my", " lord"],
    ]
    simulations = lm.simulate("names of people", batch)
    one, zero = lm.one_zero
    for tokens, simulation in zip(batch, simulations, strict=True):
        ids, slots = lm.encode_simulation(simulation_prompt("names of people", tokens))
        with torch.no_grad():
            whole = torch.softmax(model(torch.tensor([ids])).logits[0], -1)
        for k, slot in enumerate(slots):
            with torch.no_grad():
                after = model(torch.tensor([ids[:slot] + [one]])).logits[0, -1]
            p = [float(whole[slot - 1, i]) for i in lm.digit_ids]
            ten = p[1] * float(torch.softmax(after, -1)[zero])
            p[1] -= ten
            p.append(ten)
            want = [x / sum(p) for x in p]
            assert simulation.distribution_probabilities[k] == pytest.approx(want, abs=2e-4)


def test_explain_score_store_and_read_on_the_embedded_model(tmp_path, embedded):
    _, tokenizer = embedded
    folder = tmp_path / "pronouns" / "0"
    folder.mkdir(parents=True)
    (folder / "0.json").write_text(json.dumps(pronoun_record(tokenizer)))
    registry.register_neuron_dataset_metadata("pronouns", "mlp_post_act", "P", str(folder.parent))
    node = {"dst": "mlp_post_act", "layerIndex": 0, "activationIndex": 0, "datasets": ["pronouns"]}
    with TestClient(create_app(ServerSettings()), base_url="http://127.0.0.1") as client:
        explained = client.post("/explain", json=node)
        assert explained.status_code == 200, explained.text
        texts = explained.json()["explanations"]
        assert texts and all(t.strip() for t in texts)
        existing = client.post(
            "/existing_explanations",
            json={**{k: node[k] for k in ("dst", "layerIndex", "activationIndex")},
                  "explanationDatasets": [], "neuronDataset": "pronouns"},
        ).json()  # fmt: skip
        assert [e["explanation"] for e in existing] == texts
        assert all(e["score"] is None or -1 <= e["score"] <= 1 for e in existing)
        scored = client.post("/score", json={**node, "explanation": "pronouns", "maxSequences": 2})
        assert scored.status_code == 200, scored.text
        views = client.get("/explanations/pronouns/mlp_post_act/0/0").json()
        assert "pronouns" in [e["explanation"] for e in views[0]["explanations"]]
    # the session's $NEURONS_HOME, where the converted model is kept too
    assert (neurons_home() / "explanations/pronouns/mlp_post_act/0/0.jsonl").exists()
