"""Small holes a careless or hostile client finds: a Host header with more after an allowed
host, a number written as a float, a layer out of range while the weight views compute."""

from __future__ import annotations

import threading

import pytest

from activations.weights import views


@pytest.mark.parametrize("host", ["[::1]evil.com", "[::1]:80evil", "localhost:x", "127.0.0.1:1:2"])
def test_a_host_header_must_be_an_allowed_host_exactly(client, host):
    answer = client.get("/health", headers={"host": host})
    assert answer.status_code == 400 and "is not served here" in answer.json()["detail"]


@pytest.mark.parametrize("host", ["[::1]", "[::1]:8000", "localhost:8000", "127.0.0.1"])
def test_allowed_hosts_with_or_without_a_port_are_answered(client, host):
    assert client.get("/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("query", ["tokenId=1.0", "tokenId=%2B1", "token=w1&top=2.0"])
def test_token_search_numbers_are_digits_only(client, query):
    answer = client.get(f"/search/token/tiny-llama/mlp_post_act?{query}")
    assert answer.status_code == 422 and "digits 0-9 only" in answer.text


def test_a_layer_out_of_range_is_404_while_the_views_compute(client, tmp_path, monkeypatch):
    computing, release = threading.Event(), threading.Event()
    real = views.compute_all

    def slow(*args, **kwargs):
        computing.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "compute_all", slow)
    monkeypatch.setattr(views, "cache_path", lambda metadata: tmp_path / "views.arrow")
    try:
        # a neuron's own view at once; the model's table is then computed meanwhile
        assert client.get("/weights/tiny-llama/0/0").status_code == 200
        assert computing.wait(60)  # the model is loaded, its views under way
        answer = client.get("/weights/tiny-llama/99/0")
        assert answer.status_code == 404 and "layer 99 is out of range" in answer.json()["detail"]
        answer = client.get("/weights/tiny-llama/0/99999")
        assert answer.status_code == 404 and "out of range" in answer.json()["detail"]
        assert client.get("/weights/tiny-llama/1/3").status_code == 200  # in range: at once
        assert client.get("/classes/tiny-llama").json()["state"] == "computing"
    finally:
        release.set()
