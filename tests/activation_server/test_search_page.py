"""The search page (/search) in headless Chromium over a live server on the tiny dataset: its
tables list what POST /search/prompt and GET /search/token answer, a token of the text searches
at it, the address replays a search, a row opens its neuron, and a token that is several
tokens gets the server's message."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.activation_server.test_viewer import server_url, wait_for_neuron

__all__ = ["server_url"]  # the viewer test's live server, a fixture of this module too

TEXT = "w1 w2 w3 w4 w5"
FOUND = "w52"  # a word of the tiny corpus (conftest's random documents)


def test_search_page_is_served_but_not_in_the_api_schema(client):
    response = client.get("/search")
    assert response.status_code == 200
    assert '<script type="module" src="/static/js/search.js">' in response.text
    script = client.get("/static/js/search.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'href="/search"' in client.get("/").text  # linked from the viewer's header
    assert "/search" not in client.get("/openapi.json").json()["paths"]


def table(page, name: str) -> list[list[str]]:
    """The rows of a results table, each row's cells' text."""
    return page.locator(f"#{name} tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def prompt_rows(answer: dict) -> list[list[str]]:
    return [[str(n["layer"]), str(n["neuron"])] for n in answer["neurons"]]


def wait_for_prompt(page, token_index: int | None) -> None:
    at = "" if token_index is None else str(token_index)
    page.locator(f'#prompt-results[data-state=done][data-token-index="{at}"]').wait_for()


def check_prompt_table(page, answer: dict) -> None:
    rows = table(page, "prompt-table")
    assert [r[:2] for r in rows] == prompt_rows(answer)  # the same neurons in the same order
    assert [r[3] for r in rows] == [n["token"] for n in answer["neurons"]]
    assert [r[4] for r in rows] == [n["quadrant"] or "—" for n in answer["neurons"]]
    signs = page.locator("#prompt-table td.value").evaluate_all(
        "cells => cells.map(c => c.classList.contains('pos'))"
    )
    assert signs == [n["value"] >= 0 for n in answer["neurons"]]


@pytest.mark.browser
def test_search_page_in_chromium(page, server_url):
    from playwright.sync_api import expect

    api = httpx.Client(base_url=server_url, timeout=60)

    def prompt(token_index: int | None) -> dict:
        body = {
            "model": "tiny-llama",
            "text": TEXT,
            "dst": "mlp_post_act",
            "topNeurons": 20,
            "skipFirst": True,
            "dataset": "tiny-llama",
        }  # the page's defaults
        response = api.post("/search/prompt", json={**body, "tokenIndex": token_index})
        assert response.status_code == 200, response.text
        return response.json()

    page.goto(server_url + "/search")
    page.locator("body[data-ready=true]").wait_for()
    assert page.locator("#prompt-results").is_hidden()

    # a prompt search over the whole text
    page.select_option("#dataset", "tiny-llama/mlp_post_act")
    page.fill("#text", TEXT)
    page.click("#search")
    wait_for_prompt(page, None)
    whole = prompt(None)
    check_prompt_table(page, whole)
    chips = page.locator("#chips .chip[data-index]")
    expect(chips).to_have_text(whole["tokens"])  # [BOS] and the five words
    expect(page.locator("#chips .chip.whole")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#status")).to_be_empty()

    # at one token: the table is that token's answer, and the address holds the search
    chips.nth(3).click()
    wait_for_prompt(page, 3)
    at_token = prompt(3)
    assert prompt_rows(at_token) != prompt_rows(whole)
    check_prompt_table(page, at_token)
    expect(chips.nth(3)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#chips .chip.whole")).to_have_attribute("aria-pressed", "false")
    shared = "/search?dataset=tiny-llama&dst=mlp_post_act&text=w1+w2+w3+w4+w5&token=3"
    assert page.url.endswith(shared)

    # the address shared: the same search runs on opening it
    page.goto(page.url)
    wait_for_prompt(page, 3)
    check_prompt_table(page, at_token)
    assert page.input_value("#text") == TEXT
    page.click("#chips .chip.whole")
    wait_for_prompt(page, None)
    check_prompt_table(page, whole)

    # a row's link opens its neuron's page
    first = whole["neurons"][0]
    assert first["page"] == f"/neuron/tiny-llama/mlp_post_act/{first['layer']}/{first['neuron']}"
    page.locator("#prompt-table tbody tr").first.locator("a").click()
    wait_for_neuron(page, first["layer"], first["neuron"])

    # a token search: the neurons whose top examples peak on a word of the corpus
    page.go_back()
    page.locator("body[data-ready=true]").wait_for()
    response = api.get("/search/token/tiny-llama/mlp_post_act", params={"token": FOUND})
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["neurons"], f"no top example peaks on {FOUND}"
    page.fill("#token", FOUND)
    page.click("#find")
    page.locator("#token-results[data-state=done]").wait_for()
    expected = [
        [str(n["layer"]), str(n["neuron"]), str(n["count"])] for n in found["neurons"]
    ]  # fmt: skip
    rows = table(page, "token-table")
    assert [r[:3] for r in rows] == expected
    for row, hit in zip(rows, found["neurons"], strict=True):
        assert all(f"{name} {n}" in row[4] for name, n in hit["quadrants"].items())
    expect(page.locator("#token-meta")).to_contain_text(f"{found['examples']:,} of the")
    expect(page.locator("#token-error")).to_be_hidden()
    assert re.search(rf"[?&]find={FOUND}$", page.url)

    # a token that is several tokens: the server's message, and no table
    bad = api.get("/search/token/tiny-llama/mlp_post_act", params={"token": "w1 w2"})
    assert bad.status_code == 422
    page.fill("#token", "w1 w2")
    page.click("#find")
    expect(page.locator("#token-error")).to_have_text(bad.json()["detail"])
    expect(page.locator("#token-error")).to_have_attribute("role", "alert")
    expect(page.locator("#token-results")).to_be_hidden()

    # a text over the server's token limit, and an address naming no dataset: their messages
    page.fill("#text", " ".join(["w1"] * 50))
    page.click("#search")
    expect(page.locator("#error")).to_contain_text("the limit is 40")
    expect(page.locator("#status")).to_be_empty()
    page.goto(server_url + "/search?dataset=nope&text=w1")
    expect(page.locator("#error")).to_have_text('unknown dataset "nope"; choose one of the list')
    api.close()
