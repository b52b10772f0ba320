"""Session.intervene and Session.attribute on the tiny Llama, against hooks and autograd done by
hand, and POST /intervene as the viewer's panel sends it."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations import api
from registry.vocabulary import QUADRANT_SIGNS

TEXT = "w1 w7 w3 w9 w12 w4 w20 w2"


@pytest.fixture(scope="module")
def session(tiny_models):
    registry.register_model("debug-llama", str(tiny_models["llama"]))
    one = api.Session()
    yield one
    one.close()


@pytest.fixture(scope="module")
def model(tiny_models):
    return AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()


def by_hand(model, ids, layer, neuron, change):
    """Next-token losses with `change(post, gate, in)` applied to the neuron by a hook."""
    mlp = model.model.layers[layer].mlp
    seen = {}
    hooks = [
        mlp.gate_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("gate", o)),
        mlp.up_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("in", o)),
    ]

    def pre(module, args):
        post = args[0].clone()
        post[0, :, neuron] = change(post[0, :, neuron], seen["gate"][0, :, neuron],
                                    seen["in"][0, :, neuron])  # fmt: skip
        return (post,)

    hooks.append(mlp.down_proj.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
    finally:
        for h in hooks:
            h.remove()
    logprobs = torch.log_softmax(logits, -1)
    return [-float(logprobs[t, ids[t + 1]]) for t in range(len(ids) - 1)], seen


def test_zeroing_a_neuron_equals_the_hook_done_by_hand(session, model):
    result = session.intervene("debug-llama", TEXT, 0, 5, direct_effect_token="w3")
    ids = session.models.get("debug-llama").tokens.encode(TEXT)
    same, _ = by_hand(model, ids, 0, 5, lambda post, g, u: post)
    zeroed, _ = by_hand(model, ids, 0, 5, lambda post, g, u: post * 0)
    assert [t.loss_before for t in result.tokens[:-1]] == pytest.approx(same, abs=1e-5)
    assert [t.loss_after for t in result.tokens[:-1]] == pytest.approx(zeroed, abs=1e-5)
    assert all(t.activation_after == 0.0 and t.intervened for t in result.tokens)
    assert result.tokens[-1].loss_change is None
    assert sum(t.top_before[0].probability for t in result.tokens) > 0
    # direct effect: act · W_out[i] · (s · γ ⊙ W_U[w3]), s the final RMSNorm's scale
    token_id = 3 + 3  # w3
    reading = model.lm_head.weight[token_id] * model.model.norm.weight
    post = torch.tensor([t.activation_before for t in result.tokens])
    w_out = model.model.layers[0].mlp.down_proj.weight[:, 5]
    x = _final_residual(model, ids)
    s = torch.rsqrt(x.pow(2).mean(-1) + model.model.norm.variance_epsilon)
    expected = ((post[:, None] * w_out[None]) @ reading) * s
    got = torch.tensor([t.direct_effect for t in result.tokens])
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-6)


def _final_residual(model, ids):
    seen = {}
    hook = model.model.norm.register_forward_hook(lambda m, a, o: seen.__setitem__("x", a[0]))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        hook.remove()
    return seen["x"][0]


@pytest.mark.parametrize("quadrant", ["gate+_in+", "gate-_in+"])
def test_a_quadrant_intervention_changes_only_its_tokens(session, model, quadrant):
    result = session.intervene("debug-llama", TEXT, 1, 3, mode="scale", value=3.0,
                               quadrant=quadrant)  # fmt: skip
    ids = session.models.get("debug-llama").tokens.encode(TEXT)
    gate_sign, in_sign = QUADRANT_SIGNS[quadrant]

    def change(post, gate, in_):
        where = (torch.sign(gate) == gate_sign) & (torch.sign(in_) == in_sign)
        return torch.where(where, post * 3.0, post)

    expected, _ = by_hand(model, ids, 1, 3, change)
    assert [t.loss_after for t in result.tokens[:-1]] == pytest.approx(expected, abs=1e-5)
    for t in result.tokens:
        assert t.intervened == (t.quadrant == quadrant)
        factor = 3.0 if t.intervened else 1.0
        assert t.activation_after == pytest.approx(t.activation_before * factor, abs=1e-6)


def test_attribute_ranks_each_layer_by_act_times_grad(session, model):
    result = session.attribute("debug-llama", TEXT, " w5", " w6", top=3)
    ids = session.models.get("debug-llama").tokens.encode(TEXT)
    posts = {}
    hooks = [
        layer.mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: posts.__setitem__(i, a[0]))
        for i, layer in enumerate(model.model.layers)
    ]
    norm = model.model.norm

    def fixed(module, args, output):
        x = args[0]
        s = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
        return module.weight * x * s.detach()

    hooks.append(norm.register_forward_hook(fixed))
    try:
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    finally:
        for h in hooks:
            h.remove()
    loss = logits[-1, 8] - logits[-1, 9]
    assert result.logit_difference == pytest.approx(float(loss.detach()), abs=1e-5)
    grads = torch.autograd.grad(loss, [posts[0], posts[1]])
    for layer, grad in enumerate(grads):
        scores = (posts[layer] * grad)[0].detach()
        best = scores.reshape(-1).topk(3).values.tolist()
        assert [n.act_times_grad for n in result.layers[layer].top_neurons] == pytest.approx(
            best, abs=1e-6
        )
        worst = scores.reshape(-1).topk(3, largest=False).values.tolist()
        assert [n.act_times_grad for n in result.layers[layer].bottom_neurons] == pytest.approx(
            worst, abs=1e-6
        )
    assert len(result.layers[0].top_heads) == 3


def test_the_viewers_intervene_request(tiny_models):
    registry.register_model("debug-llama", str(tiny_models["llama"]))
    with TestClient(create_app(ServerSettings()), base_url="http://127.0.0.1") as client:
        body = {"model": "debug-llama", "text": TEXT, "layer": 1, "neuron": 2, "mode": "clamp",
                "value": 2.5, "directEffectToken": "w4"}  # fmt: skip
        answer = client.post("/intervene", json=body)
        assert answer.status_code == 200, answer.text
        tokens = answer.json()["tokens"]
        assert all(t["activationAfter"] == pytest.approx(2.5) for t in tokens)
        assert all(len(t["topAfter"]) == 5 for t in tokens)
        bad = client.post("/intervene", json={**body, "quadrant": "up"})
        assert bad.status_code == 422 and "gate+_in+" in bad.json()["detail"]
        far = client.post("/intervene", json={**body, "neuron": 999})
        assert far.status_code == 404 and "0-23" in far.json()["detail"]
        word = client.post("/intervene", json={**body, "directEffectToken": "w4 w5"})
        assert word.status_code == 422 and "2 tokens" in word.json()["detail"]
