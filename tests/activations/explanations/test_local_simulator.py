"""The in-process all-at-once simulator against brute force: each slot's distribution from a
full forward pass of the prompt up to that slot, with "10" the probability of its full string
("1" then "0") where the tokenizer writes it as two tokens. A tiny random model barely reads
its context (a token seen or not moves its digits' probabilities by about 1e-6), so what each
token of the pass may see is checked on the embedded model (test_explain_embedded.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from activations.explanations.errors import UnsuitableModelError
from activations.explanations.local import LocalLM
from activations.explanations.prompts import simulation_prompt
from tests.tiny_chat import make_tiny_chat_model

SEQUENCES = [[" the", " king", " spoke", "!"], [" a", " queen"], ["\t", " 10", " x", "y", "z"]]


@pytest.fixture(scope="module", params=[False, True], ids=["ten-is-two-tokens", "ten-is-one"])
def lm(request, tmp_path_factory) -> LocalLM:
    folder = make_tiny_chat_model(tmp_path_factory.mktemp("chat"), seed=3, ten_token=request.param)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return LocalLM(model, AutoTokenizer.from_pretrained(folder), "tiny-chat", batch_size=2)


def brute_force(lm: LocalLM, ids: list[int], slot: int) -> list[float]:
    """P(value) for "0".."10" as full strings at a slot, renormalised: full passes, no cache."""
    with torch.no_grad():
        first = torch.softmax(lm.model(torch.tensor([ids[:slot]])).logits[0, -1], dim=-1)
        p = [float(first[i]) for i in lm.digit_ids]
        if lm.ten_id is not None:
            p.append(float(first[lm.ten_id]))
        else:
            one, zero = lm.one_zero
            after = lm.model(torch.tensor([ids[:slot] + [one]])).logits[0, -1]
            p_ten = p[1] * float(torch.softmax(after, dim=-1)[zero])
            p[1] -= p_ten
            p.append(p_ten)
    total = sum(p)
    return [x / total for x in p]


@pytest.mark.parametrize(
    "sequences",
    [
        SEQUENCES,
        [[" the", " king"], [" the", " king"], [" the", " queen"]],  # shared beyond a slot
        [[" alone", " here"]],  # one prompt: all of it shared but its slots
        [[], [" x"]],  # a sequence with no token
    ],
    ids=["batched", "repeated", "one", "empty"],
)
def test_expected_values_match_a_brute_force_softmax_at_every_slot(lm, sequences):
    simulations = lm.simulate("royalty", sequences)
    assert (lm.ten_id is None) == (lm.one_zero is not None)
    checked = 0
    for tokens, simulation in zip(sequences, simulations, strict=True):
        ids, slots = lm.encode_simulation(simulation_prompt("royalty", tokens))
        assert simulation.tokens == tokens
        for slot, values, probs, expected in zip(
            slots,
            simulation.distribution_values,
            simulation.distribution_probabilities,
            simulation.expected_activations,
            strict=True,
        ):
            assert (
                slot > 0
                and "".join(lm.tokenizer.convert_ids_to_tokens(ids[slot : slot + 7])) == "unknown"
            )
            want = brute_force(lm, ids, slot)
            assert probs == pytest.approx(want, abs=1e-5)
            assert values == [float(v) for v in range(11)]
            assert expected == pytest.approx(sum(v * p for v, p in enumerate(want)), abs=1e-4)
            checked += 1
    assert checked == sum(map(len, sequences))


def test_batches_do_not_change_the_answer(lm):
    alone = [lm.simulate("royalty", [s])[0] for s in SEQUENCES]
    together = lm.simulate("royalty", SEQUENCES)
    for a, b in zip(alone, together, strict=True):
        assert a.expected_activations == pytest.approx(b.expected_activations, abs=1e-5)


def test_models_that_cannot_simulate_are_named(tmp_path):
    folder = make_tiny_chat_model(tmp_path / "plain", chat_template=False)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with pytest.raises(UnsuitableModelError, match="'plain-lm' has no chat template"):
        LocalLM(model, AutoTokenizer.from_pretrained(folder), "plain-lm")


def test_generation_gives_n_one_line_samples(lm):
    samples = lm.generate([{"role": "user", "content": "hi"}], n=3, max_new_tokens=6, seed=1)
    assert len(samples) == 3 and all("\n" not in s.strip() for s in samples)
    assert samples == lm.generate([{"role": "user", "content": "hi"}], 3, 6, seed=1)


def test_the_shared_prefix_cache_changes_nothing(lm):
    whole = LocalLM(lm.model, lm.tokenizer, "tiny-chat", prefix_cache=False)
    with_prefix = lm.simulate("royalty", SEQUENCES)
    prefix, _ = lm._prefix()
    assert len(prefix) > 100  # the system message and the few-shot examples
    for a, b in zip(with_prefix, whole.simulate("royalty", SEQUENCES), strict=True):
        assert a.expected_activations == pytest.approx(b.expected_activations, abs=1e-5)


def test_generation_over_the_shared_prompt_cache_is_plain_generation(lm):
    plain = LocalLM(lm.model, lm.tokenizer, "tiny-chat", prefix_cache=False)
    messages = [{"role": "user", "content": "explain w1"}]
    assert lm.generate(messages, 2, 8, temperature=0) == plain.generate(
        messages, 2, 8, temperature=0
    )
    assert lm.generate(messages, 3, 8, seed=4) == plain.generate(messages, 3, 8, seed=4)


def test_generation_over_the_kept_few_shot_cache_is_plain_generation(lm):
    plain = LocalLM(lm.model, lm.tokenizer, "tiny-chat", prefix_cache=False)
    few_shot = [
        {"role": "system", "content": "explain neurons"},
        {"role": "user", "content": "w1 w2"},
        {"role": "assistant", "content": "w2"},
    ]
    for last in ("explain w1", "explain w3 w4"):  # the second reuses the kept cache
        messages = [*few_shot, {"role": "user", "content": last}]
        assert lm.generate(messages, 3, 8, seed=4) == plain.generate(messages, 3, 8, seed=4)
    assert lm.tokenizer.apply_chat_template(few_shot, tokenize=False) in lm._prefixes


def test_another_dtype_runs_on_a_copy_and_simulates_alike(lm):
    half = LocalLM(lm.model, lm.tokenizer, "tiny-chat", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and lm.model.dtype == torch.float32
    assert half.source is lm.model
    simulated = half.simulate("royalty", SEQUENCES), lm.simulate("royalty", SEQUENCES)
    for a, b in zip(*simulated, strict=True):
        assert a.expected_activations == pytest.approx(b.expected_activations, abs=0.3)
    assert LocalLM(lm.model, lm.tokenizer, "tiny-chat", dtype="float32").model is lm.model
    with pytest.raises(UnsuitableModelError, match="unknown dtype 'half-ish'"):
        LocalLM(lm.model, lm.tokenizer, "tiny-chat", dtype="half-ish")


@pytest.mark.parametrize(
    ("amx", "avx512_bf16"), [(True, False), (False, True), (True, True), (False, False)]
)
def test_auto_dtype_is_bfloat16_only_where_the_cpu_multiplies_it(lm, monkeypatch, amx, avx512_bf16):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    native = amx or avx512_bf16
    auto = LocalLM(lm.model, lm.tokenizer, "tiny-chat", dtype="auto")
    if native:
        assert auto.model.dtype == torch.bfloat16 and auto.source is lm.model
    else:
        assert auto.model is lm.model and auto.model.dtype == torch.float32
