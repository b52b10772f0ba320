"""Prompt search against a brute-force reference: every value of every layer captured by plain
hooks on the model (tests/activations/reference.py), then sorted."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoModelForCausalLM

import registry
from activations.models.live import LiveRequestError, ModelRunner
from activations.search.answers import SearchError
from activations.search.prompt import search_prompt
from tests.activations.reference import QUADRANT_TESTS, full_activations
from tests.tiny import random_documents

KEY = {"mlp_pre_act": "g", "mlp_pre_linear": "u", "mlp_swish": "swish", "mlp_post_act": "post"}
TEXT = random_documents(1, seed=11, max_words=30)[0] + " w1 w2 w3"


def reference(folder, ids, dst: str, at: int | None, top: int, sign=None, first: int = 0):
    """Every (layer, neuron) with its value at its strongest token (or at `at`), sorted by
    |value|, ties to the lower layer and neuron."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    acts = full_activations(model, [ids], 1)[0]
    found = []
    for layer, values in acts.items():
        chosen = values[KEY[dst]]  # [T, N]
        for n in range(chosen.shape[1]):
            column = chosen[:, n] * (1 if sign is None else sign[layer][n])
            p = first + int(np.argmax(np.abs(column[first:]))) if at is None else at
            quadrant = None
            if "g" in values:
                g, u = (
                    values["g"][p, n],
                    values["u"][p, n] * (1 if sign is None else sign[layer][n]),
                )
                quadrant = next((q for q, test in QUADRANT_TESTS.items() if test(g, u)), None)
            found.append((abs(float(column[p])), layer, n, float(column[p]), p, quadrant))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return found[:top]


def runner_for(folder, name: str, **kwargs) -> ModelRunner:
    return ModelRunner(registry.register_model(name, str(folder), **kwargs))


@pytest.mark.parametrize("arch", ["llama", "phi3"])
@pytest.mark.parametrize("dst", list(KEY))
def test_the_top_neurons_of_a_text_are_a_sort_of_every_value(tiny_models, arch, dst):
    runner = runner_for(tiny_models[arch], f"tiny-{arch}")
    got = search_prompt(runner, TEXT, dst, top=9)
    want = reference(tiny_models[arch], got.token_ids, dst, None, 9)
    assert [(h.layer, h.neuron, h.position) for h in got.neurons] == [
        w[1:3] + (w[4],) for w in want
    ]
    assert [h.value for h in got.neurons] == pytest.approx([w[3] for w in want], abs=1e-6)
    assert [h.quadrant for h in got.neurons] == [w[5] for w in want]
    assert [h.token for h in got.neurons] == [got.tokens[w[4]] for w in want]
    assert got.token_index is None and got.hook and len(got.tokens) == len(got.token_ids)


@pytest.mark.parametrize("at", [0, 5, -1])
def test_the_top_neurons_at_one_token(tiny_models, at):
    runner = runner_for(tiny_models["llama"], "tiny-llama")
    got = search_prompt(runner, TEXT, "mlp_post_act", token_index=at, top=12)
    position = at % len(got.token_ids)
    want = reference(tiny_models["llama"], got.token_ids, "mlp_post_act", position, 12)
    assert got.token_index == position
    assert [(h.layer, h.neuron) for h in got.neurons] == [w[1:3] for w in want]
    assert all(h.position == position for h in got.neurons)
    assert [h.value for h in got.neurons] == pytest.approx([w[3] for w in want], abs=1e-6)


def test_the_first_token_can_be_left_out(tiny_models):
    runner = runner_for(tiny_models["llama"], "tiny-llama")
    got = search_prompt(runner, TEXT, "mlp_post_act", top=12, skip_first=True)
    want = reference(tiny_models["llama"], got.token_ids, "mlp_post_act", None, 12, first=1)
    assert [(h.layer, h.neuron, h.position) for h in got.neurons] == [
        (w[1], w[2], w[4]) for w in want
    ]
    assert all(h.position > 0 for h in got.neurons)
    with_first = search_prompt(runner, TEXT, "mlp_post_act", top=48)
    assert any(h.position == 0 for h in with_first.neurons)  # the test can tell
    one_token = search_prompt(runner, "w1", "mlp_post_act", top=3, skip_first=True)
    assert one_token.neurons  # nothing else to search: the first token stays


def test_a_refactored_model_is_searched_refactored(tiny_models):
    runner = runner_for(tiny_models["llama"], "tiny-flipped", refactor_glu=True)
    got = search_prompt(runner, TEXT, "mlp_post_act", top=10)
    signs = {
        layer: [runner.refactor_sign(layer, n) for n in range(runner.n_neurons)]
        for layer in range(runner.n_layers)
    }
    want = reference(tiny_models["llama"], got.token_ids, "mlp_post_act", None, 10, signs)
    assert any(s < 0 for layer in signs.values() for s in layer)  # the test can tell
    assert [(h.layer, h.neuron, h.quadrant) for h in got.neurons] == [
        (w[1], w[2], w[5]) for w in want
    ]
    assert [h.value for h in got.neurons] == pytest.approx([w[3] for w in want], abs=1e-6)


def test_a_plain_mlp_has_values_and_no_quadrants(tiny_models):
    runner = runner_for(tiny_models["gpt2"], "tiny-gpt2")
    got = search_prompt(runner, "w1 w2 w3 w4", "mlp_post_act", top=5)
    want = reference(tiny_models["gpt2"], got.token_ids, "mlp_post_act", None, 5)
    assert [(h.layer, h.neuron) for h in got.neurons] == [w[1:3] for w in want]
    assert all(h.quadrant is None for h in got.neurons)
    with pytest.raises(LiveRequestError, match="mlp_post_act"):
        search_prompt(runner, "w1", "mlp_pre_act")


def test_bad_requests_say_what_is_valid(tiny_models):
    runner = runner_for(tiny_models["llama"], "tiny-llama")
    with pytest.raises(SearchError, match=r"tokenIndex 99 is out of range: the text has 4 tokens"):
        search_prompt(runner, "w1 w2 w3", token_index=99)
    with pytest.raises(SearchError, match="top must be at least 1"):
        search_prompt(runner, "w1", top=0)
    many = search_prompt(runner, "w1 w2", top=10_000)  # more than there are: all of them
    assert len(many.neurons) == runner.n_layers * runner.n_neurons
