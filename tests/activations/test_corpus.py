"""Corpora: the plays split lazily and the split kept; a corpus edited after collation noticed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations import corpus as corpora
from activations.collate import CollateConfig, collate
from tests.servers import LOCAL
from tests.tiny import random_documents, word_tokenizer, write_jsonl


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_first_documents_cost_one_play_and_the_split_is_kept(home, monkeypatch):
    tokenizer = word_tokenizer()
    lazy = corpora.shakespeare_corpus(tokenizer, 256)
    first = list(lazy.documents[:8])
    assert lazy.documents._plays_done == 1 and len(first) == 8
    plays = corpora.shakespeare_plays()
    budget = 256 - len(tokenizer("").input_ids)
    eager = [d for _, text in plays for d in corpora.split_by_tokens(text, budget, tokenizer)]
    assert len(lazy) == len(eager) and list(lazy.documents[:]) == eager  # the same documents
    assert lazy.clamp(10**9) == len(eager)

    def never(*args, **kwargs):
        raise AssertionError("the kept split is read, not made again")

    monkeypatch.setattr(corpora, "split_by_tokens", never)
    again = corpora.shakespeare_corpus(tokenizer, 256)
    assert len(again) == len(eager) and again.documents[17] == eager[17]
    other = corpora.shakespeare_corpus(tokenizer, 128)  # another limit: another split
    with pytest.raises(AssertionError, match="not made again"):
        other.documents[0]


def test_a_corpus_edited_after_collation_is_not_shown_beside_its_records(home, tmp_path,
                                                                        tiny_models):  # fmt: skip
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    documents = random_documents(6, seed=9)
    corpus = write_jsonl(tmp_path / "docs.jsonl", documents)
    out = collate(
        CollateConfig(model="tiny-llama", out=str(tmp_path / "f.parquet"), corpus=str(corpus),
                      top_k=4, engine="eager", progress=False)
    )  # fmt: skip
    registry.register_glu_dataset("tiny", str(out), model="tiny-llama", corpus=str(corpus))
    path = "/neuron_record/tiny/mlp_post_act/1/5?context=2"
    with TestClient(create_app(ServerSettings()), base_url=LOCAL) as client:
        body = client.get(path).json()
        assert body["contextNote"] is None
        assert all(e["tokens"] for q in body["quadrants"] for e in q["examples"]["hook_post"])
    write_jsonl(corpus, [documents[0] + " w1", *documents[1:]])  # one document edited
    with TestClient(create_app(ServerSettings()), base_url=LOCAL) as client:
        body = client.get(path).json()
    assert "has changed since this file was collated (documents 0-6 differ)" in body["contextNote"]
    assert not any(e["tokens"] for q in body["quadrants"] for e in q["examples"]["hook_post"])


def test_a_corpus_that_failed_is_tried_again_after_a_while(home, tmp_path, tiny_models,
                                                           monkeypatch):  # fmt: skip
    from activations.text import corpora

    monkeypatch.setattr(corpora, "RETRY_CORPUS_AFTER_S", 0.5)
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(6, seed=9))
    out = collate(
        CollateConfig(model="tiny-llama", out=str(tmp_path / "f.parquet"), corpus=str(corpus),
                      top_k=4, engine="eager", progress=False)
    )  # fmt: skip
    registry.register_glu_dataset("tiny", str(out), model="tiny-llama", corpus=str(corpus))
    moved = corpus.rename(tmp_path / "elsewhere.jsonl")
    with TestClient(create_app(ServerSettings()), base_url=LOCAL) as client:
        first = client.get("/neuron_record/tiny/mlp_post_act/1/5?context=2").json()
        assert "is not available here" in first["contextNote"]
        again = client.get("/neuron_record/tiny/mlp_post_act/1/6?context=2").json()
        assert "tried again in" in again["contextNote"]  # remembered, and says for how long
        moved.rename(corpus)
        import time

        time.sleep(0.6)
        back = client.get("/neuron_record/tiny/mlp_post_act/1/7?context=2").json()
        assert back["contextNote"] is None
