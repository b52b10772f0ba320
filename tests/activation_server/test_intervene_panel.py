"""The neuron page's "Intervene" panel in headless Chromium over a live server on the tiny
dataset: a clamp on the live text, one row per token, and the server's message for a token
that is not one."""

from __future__ import annotations

import pytest

from tests.activation_server.test_viewer import server_url, wait_for_neuron  # noqa: F401


@pytest.mark.browser
def test_the_intervene_panel(page, server_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(server_url + "/neuron/tiny-llama/mlp_post_act/1/5")
    wait_for_neuron(page, 1, 5)
    page.fill("#live-text", "w1 w2 w3 w4")
    page.select_option("#intervene-mode", "clamp")
    page.fill("#intervene-value", "2")
    page.fill("#intervene-token", "w3")
    page.click("#intervene-run")
    rows = page.locator("#intervene-output tbody tr")
    expect(rows).to_have_count(5)  # [BOS] and four words
    expect(rows.first.locator("td").nth(2)).to_contain_text("→ 2")
    assert page.locator("#intervene-output thead th").last.inner_text().startswith("direct")
    expect(page.locator("#intervene-status")).to_contain_text("5 of 5 tokens changed")
    options = page.locator("#intervene-quadrant option").all_inner_texts()
    assert "only in gate+_in+" in options

    page.fill("#intervene-token", "w3 w4")
    page.click("#intervene-run")
    expect(page.locator("#intervene-error")).to_contain_text("not one token")
