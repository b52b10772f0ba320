"""Conventions of the published OLMo-7B files, as a model's registry entry states them: the BOS
token put before every text though the tokenizer adds none (<|endoftext|>), and values of the
refactored model (refactor_glu). Collation, live runs and example values all follow them."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import registry
from activations.collate import CollateConfig, collate
from activations.models.live import LiveRequest, ModelRunner
from activations.models.tokens import Tokens
from activations.records.schema import METADATA_KEY
from tests.tiny import make_tiny_model, random_documents, word_tokenizer, write_jsonl


def test_the_bos_token_goes_first_where_the_tokenizer_puts_none():
    bare, own = word_tokenizer(adds_bos=False), word_tokenizer(adds_bos=True)
    w1, w2, w3 = bare("w1 w2 w3").input_ids
    assert Tokens(bare, "[BOS]").encode("w1 w2 w3") == [2, w1, w2, w3]
    assert Tokens(bare, None).encode("w1 w2 w3") == [w1, w2, w3]
    assert Tokens(own, "[BOS]").encode("w1 w2 w3") == [2, w1, w2, w3]  # never twice
    assert Tokens(bare, "[BOS]").encode("w1 w2 w3", max_length=2) == [2, w1]
    with pytest.raises(ValueError, match="no token '<|endoftext|>'"):
        Tokens(bare, "<|endoftext|>")


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The same weights twice: with a tokenizer that begins texts with [BOS], and with one
    that does not."""
    root = tmp_path_factory.mktemp("twins")
    own = make_tiny_model("llama", root / "own-bos", seed=3, adds_bos=True)
    bare = make_tiny_model("llama", root / "no-bos", seed=3, adds_bos=False)
    return own, bare


def test_collation_with_a_bos_rule_equals_a_tokenizer_that_adds_it(tmp_path, twins):
    own, bare = twins
    registry.register_model("own", str(own))
    registry.register_model("bare-with-rule", str(bare), bos_token="[BOS]")
    registry.register_model("bare", str(bare))
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(7, seed=2))
    tables, bos = {}, {}
    runs = {
        "own": ("own", None),
        "bare-with-rule": ("bare-with-rule", None),
        "bare": ("bare", None),
        "bare, --bos-token [BOS]": ("bare", "[BOS]"),
        "bare-with-rule, --bos-token none": ("bare-with-rule", "none"),
    }
    for i, (run, (model, option)) in enumerate(runs.items()):
        out = collate(
            CollateConfig(
                model=model, out=str(tmp_path / f"{i}.parquet"), corpus=str(corpus), top_k=4,
                engine="eager", progress=False, bos_token=option,
            )
        )  # fmt: skip
        tables[run] = [
            {k: "NaN" if v != v else v for k, v in row.items()}  # NaN: an empty quadrant's mean
            for row in pq.read_table(out).to_pylist()
        ]
        bos[run] = json.loads(pq.read_schema(out).metadata[METADATA_KEY])["bos_token"]
    assert tables["bare-with-rule"] == tables["own"]  # positions and frequencies alike
    assert tables["bare, --bos-token [BOS]"] == tables["own"]
    # without the rule every position is one less, and the BOS token's values are not counted
    assert tables["bare"] != tables["own"]
    assert tables["bare-with-rule, --bos-token none"] == tables["bare"]
    assert bos == {
        "own": None,
        "bare-with-rule": "[BOS]",
        "bare": None,
        "bare, --bos-token [BOS]": "[BOS]",
        "bare-with-rule, --bos-token none": None,
    }


def test_live_values_follow_the_bos_rule(twins):
    own, bare = twins
    request = [LiveRequest(texts=("w4 w5 w6",), layer=1, neurons=(3, 9))]
    with_rule = registry.register_model("r", str(bare), bos_token="[BOS]")
    got = ModelRunner(with_rule).run(request)[0][0]
    want = ModelRunner(registry.register_model("o", str(own))).run(request)[0][0]
    assert got.tokens == want.tokens and got.tokens[0] == "[BOS]"
    assert [n.values for n in got.neurons] == [n.values for n in want.neurons]


def test_live_values_of_a_refactored_model_flip_in_and_post(twins):
    own, _ = twins
    plain = ModelRunner(registry.register_model("plain", str(own)))
    flipped = ModelRunner(registry.register_model("flipped", str(own), refactor_glu=True))
    ids = [plain.tokens.encode("w7 w8 w9 w10")]
    hooks = ["hook_pre", "hook_pre_linear", "swish", "hook_post"]
    signs = [flipped.refactor_sign(0, n) for n in range(24)]
    assert -1.0 in signs and 1.0 in signs  # both kinds of neuron are checked
    for neuron, sign in enumerate(signs):
        a = plain.neuron_values(ids, 0, neuron, hooks)[0]
        b = flipped.neuron_values(ids, 0, neuron, hooks)[0]
        assert b["hook_pre"] == a["hook_pre"] and b["swish"] == a["swish"]
        assert b["hook_pre_linear"] == pytest.approx([sign * v for v in a["hook_pre_linear"]])
        assert b["hook_post"] == pytest.approx([sign * v for v in a["hook_post"]])
