"""The neuron viewer: its files are served, and the real page works in headless Chromium over a
live server on the tiny dataset (set NEURONS_SCREENSHOT=1 to refresh docs/viewer.png)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer

SCREENSHOT = Path(__file__).parents[2] / "docs" / "viewer.png"


def test_page_and_assets_are_served_but_not_in_the_api_schema(client):
    for path in ("/", "/neuron/tiny-llama/mlp_post_act/1/5"):
        response = client.get(path)
        assert response.status_code == 200
        assert '<script type="module" src="/static/js/main.js">' in response.text
    for module in ("main", "nav", "record", "live", "tokens", "dom", "state"):
        script = client.get(f"/static/js/{module}.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "pushState" in client.get("/static/js/nav.js").text
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/nope.js").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p == "/" or p.startswith(("/neuron/", "/static")) for p in paths)


@pytest.fixture
def server_url(tiny_dataset) -> Iterator[str]:
    """The app under uvicorn, as `neurons serve` runs it, on an ephemeral port."""
    register_tiny(tiny_dataset)
    settings = ServerSettings(max_tokens_per_request=40)
    with LiveServer(create_app(settings), settings) as server:
        yield server.url


def wait_for_neuron(page, layer: int, neuron: int) -> None:
    """That neuron's address, title and summary, with its examples loaded."""
    page.wait_for_url(re.compile(rf"/neuron/tiny-llama/mlp_post_act/{layer}/{neuron}$"))
    page.locator("#title", has_text=f"layer {layer} · neuron {neuron}").wait_for()
    page.locator("#record[data-state=done] #quadrant-table").wait_for()


@pytest.mark.browser
def test_viewer_in_chromium(page, server_url):
    from playwright.sync_api import expect

    page.goto(server_url + "/")
    page.locator("body[data-ready=true]").wait_for()
    assert page.locator("#record").is_hidden()

    # pick the dataset, then a neuron by typing
    page.select_option("#dataset", "tiny-llama/mlp_post_act")
    wait_for_neuron(page, 0, 0)
    page.fill("#neuron", "3")
    page.press("#neuron", "Enter")
    wait_for_neuron(page, 0, 3)
    expect(page.locator("#quadrant-table tbody tr")).to_have_count(4)
    # the file's metadata, read by its camelCase keys on the wire
    expect(page.locator("#meta")).to_contain_text("top 4 per quadrant")
    expect(page.locator("#meta")).to_contain_text(" tokens")
    header = page.locator("#quadrant-table thead th").all_inner_texts()
    for column in ("freq", "mean hook_pre", "mean hook_pre_linear", "mean swish", "max hook_post"):
        assert column in header
    tokens = page.locator("#examples .tok.coloured")
    assert tokens.count() > 0
    assert re.search(r"-?\d+\.\d+", tokens.first.get_attribute("title"))
    assert page.locator("#examples .tok.max").count() > 0
    page.select_option("#example-hook", "hook_pre")  # fetched on demand
    expect(page.locator("#examples h3").first).to_contain_text("by hook_pre")
    page.select_option("#colour-hook", "hook_pre_linear")
    assert "hook_pre_linear = " in tokens.first.get_attribute("title")

    # a shared address, then next and back
    page.goto(server_url + "/neuron/tiny-llama/mlp_post_act/1/5")
    wait_for_neuron(page, 1, 5)
    page.locator("#examples .tok.coloured").first.wait_for()
    page.click("#next")
    wait_for_neuron(page, 1, 6)
    page.go_back()
    wait_for_neuron(page, 1, 5)
    assert page.input_value("#neuron") == "5"

    # live activations with each token's quadrant
    page.fill("#live-text", "w1 w2 w3 w4")
    page.click("#live-run")
    live = page.locator("#live-output .tok.coloured")
    expect(live).to_have_count(5)  # [BOS] and four words
    expect(page.locator("#live-output .quadrant-label")).to_have_count(5)
    assert "quadrant" in " ".join(live.nth(i).get_attribute("title") for i in range(5))

    if os.environ.get("NEURONS_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a neuron that does not exist: the server's message, with the valid range
    page.fill("#neuron", "999")
    page.press("#neuron", "Enter")
    expect(page.locator("#error")).to_contain_text("valid neurons are 0-23")
    assert page.locator("#record").is_hidden()

    # a random neuron of the dataset's range
    page.click("#random")
    page.wait_for_url(re.compile(r"/neuron/tiny-llama/mlp_post_act/[01]/(\d|1\d|2[0-3])$"))
    page.locator("#record[data-state=done] #quadrant-table").wait_for()
    expect(page.locator("#error")).to_be_hidden()
