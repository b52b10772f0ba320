"""Both searches over HTTP answer what the Python API answers, and every bad request says what
is valid."""

from __future__ import annotations

import pytest

import registry
from activations.api import Session

TEXT = "w1 w5 w9 w13 w2 w7"


def test_prompt_search_answers_as_the_api_does_with_pages(client):
    for body in ({}, {"tokenIndex": 3}, {"tokenIndex": -1, "dst": "mlp_pre_act"}):
        answer = client.post(
            "/search/prompt", json={"model": "tiny-llama", "text": TEXT, "topNeurons": 6, **body}
        )
        assert answer.status_code == 200, answer.text
        got = answer.json()
        want = Session().search_prompt(
            "tiny-llama", TEXT, body.get("dst", "mlp_post_act"), body.get("tokenIndex"), 6
        )
        assert got == want.model_dump(mode="json", by_alias=True)
        assert len(got["neurons"]) == 6 and got["dataset"] == "tiny-llama"
        hit = got["neurons"][0]
        assert hit["page"] == f"/neuron/tiny-llama/{got['dst']}/{hit['layer']}/{hit['neuron']}"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"tokenIndex": 40}, 422, "tokenIndex 40 is out of range: the text has 7 tokens"),
        ({"text": ""}, 422, "text 0 is empty"),
        ({"text": "w1 " * 60}, 413, "the limit is 40"),
        ({"model": "no-such"}, 404, "tiny-llama"),
        ({"dst": "mlp_nothing"}, 422, "mlp_post_act"),
        ({"topNeurons": 0}, 422, "greater than or equal to 1"),
    ],
)
def test_a_bad_prompt_search_says_what_is_valid(client, body, status, says):
    answer = client.post("/search/prompt", json={"model": "tiny-llama", "text": TEXT, **body})
    assert answer.status_code == status, answer.text
    assert says in str(answer.json()["detail"])


def test_token_search_answers_as_the_api_does(client):
    for query in ("token=w7", "token=%20w7&top=3", "tokenId=10"):
        answer = client.get(f"/search/token/tiny-llama/mlp_post_act?{query}")
        assert answer.status_code == 200, answer.text
        got = answer.json()
        want = Session().open_dataset("tiny-llama").search_token(token_id=got["tokenId"], top=20)
        assert (
            got["neurons"]
            == [h.model_dump(mode="json", by_alias=True) for h in want.neurons][
                : len(got["neurons"])
            ]
        )
        assert got["neurons"] and got["examples"] >= got["neurons"][0]["count"] > 0


def test_pages_link_to_the_dataset_asked_for(client, tiny_dataset):
    registry.register_glu_dataset(
        "tiny-copy", str(tiny_dataset["parquet"]), model="tiny-llama",
        corpus=str(tiny_dataset["corpus"]),
    )  # fmt: skip
    body = {"model": "tiny-llama", "text": TEXT, "topNeurons": 3, "dataset": "tiny-copy"}
    got = client.post("/search/prompt", json=body).json()
    assert got["dataset"] == "tiny-copy"
    assert all(h["page"].startswith("/neuron/tiny-copy/") for h in got["neurons"])
    registry.register_model("other", str(tiny_dataset["model"]))
    registry.register_glu_dataset("other-data", str(tiny_dataset["parquet"]), model="other")
    wrong = client.post("/search/prompt", json=body | {"dataset": "other-data"})
    assert wrong.status_code == 422 and "of model other, not tiny-llama" in wrong.json()["detail"]


def test_token_search_reads_the_loaded_model_s_tokenizer(client):
    # a prompt search loads the model: the token is then read with its own (locked) tokenizer
    assert client.post("/search/prompt", json={"model": "tiny-llama", "text": TEXT}).is_success
    answer = client.get("/search/token/tiny-llama/mlp_post_act?token=w7")
    assert answer.status_code == 200, answer.text
    assert answer.json()["tokenId"] == 10


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/search/token/tiny-llama/mlp_post_act?token=w7%20w8", 422, "is 2 tokens"),
        ("/search/token/tiny-llama/mlp_post_act", 422, "one of them"),
        ("/search/token/tiny-llama/mlp_post_act?tokenId=5000", 422, "valid ids are 0-62"),
        ("/search/token/tiny-llama/mlp_post_act?token=w7&top=0", 422, "greater than"),
        ("/search/token/no-such/mlp_post_act?token=w7", 404, "tiny-llama"),
        ("/search/token/gpt2-small/mlp_post_act?token=w7", 422, "GLU quadrant datasets"),
    ],
)
def test_a_bad_token_search_says_what_is_valid(client, path, status, says):
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    assert says in str(answer.json()["detail"])
