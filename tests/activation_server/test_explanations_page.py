"""The neuron page's explanation pane and the search page's explanation search, in headless
Chromium over a live server: explain a GLU neuron (a tiny chat model explaining in process),
see each quadrant's explanation and score, score a typed explanation and see its simulated
values beside the real ones, then find the neuron by its explanation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from registry.explanations import register_explainer
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer
from tests.tiny_chat import make_tiny_chat_model


@pytest.fixture
def server_url(tiny_dataset, tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    register_tiny(tiny_dataset)
    registry.register_model("tiny-chat", str(make_tiny_chat_model(tmp_path / "chat", seed=5)))
    register_explainer("embedded", "in_process", "tiny-chat")  # the page asks the default
    settings = ServerSettings(max_tokens_per_request=40)
    with LiveServer(create_app(settings), settings) as server:
        yield server.url


def test_the_pages_serve_their_explanation_modules(client):
    assert 'id="explanations"' in client.get("/neuron/tiny-llama/mlp_post_act/1/5").text
    assert "explanation_search.js" in client.get("/search").text
    for module in ("explanations", "explanation_search"):
        assert client.get(f"/static/js/{module}.js").status_code == 200


@pytest.mark.browser
def test_explain_score_and_find_in_chromium(page, server_url):
    from playwright.sync_api import expect

    page.goto(server_url + "/neuron/tiny-llama/mlp_post_act/1/5")
    expect(page.locator("#explanations-body")).to_contain_text("No explanation yet")
    page.click("#explain")
    table = page.locator("#explanations-body table")
    table.wait_for()
    expect(table.locator("tbody tr").first).to_contain_text("positive activations")
    assert table.locator("tbody tr").count() >= 2  # and at least one quadrant
    assert "quadrant" in table.inner_text()

    page.fill("#score-text", "w3 and w4 words")
    page.click("#score")
    output = page.locator("#score-output")
    expect(output).to_contain_text("score")
    first = output.locator(".simulated").first
    expect(first).to_contain_text("simulated (0-10)")
    assert first.locator(".text").count() == 2  # the real values, then the simulated ones
    real, simulated = first.locator(".text").all()
    assert real.locator(".tok").count() == simulated.locator(".tok").count() > 0

    page.goto(server_url + "/search?explanations=w3%20w4")
    hits = page.locator("#explanation-table tbody tr")
    hits.first.wait_for()
    expect(hits.first).to_contain_text("w3 and w4 words")
    hits.first.locator("a").click()
    page.wait_for_url("**/neuron/tiny-llama/mlp_post_act/1/5")
