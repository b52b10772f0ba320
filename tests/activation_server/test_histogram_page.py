"""A neuron's value histogram: in the record the server answers (and the Python API), and drawn
on the neuron page, each bar split by quadrant."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from activations import api
from registry.vocabulary import HISTOGRAM_BINS, HISTOGRAM_ZERO_BIN, histogram_inner_edges
from tests.activation_server.test_viewer import server_url, wait_for_neuron  # noqa: F401


def test_the_record_holds_every_token_s_histogram_and_each_quadrant_s(client, tiny_dataset):
    body = client.get("/neuron_record/tiny-llama/mlp_post_act/1/5").json()
    histogram = body["histogram"]
    assert histogram["hook"] == "hook_post"
    assert histogram["innerEdges"] == histogram_inner_edges()
    assert histogram["zeroBin"] == HISTOGRAM_ZERO_BIN
    counts = np.array(histogram["counts"])
    assert counts.shape == (HISTOGRAM_BINS,)
    assert counts.sum() == body["fileMetadata"]["nTokens"]  # every token, once
    by_quadrant = np.array([q["histogram"] for q in body["quadrants"]])
    assert [int(c) for c in by_quadrant.sum(axis=1)] == [q["count"] for q in body["quadrants"]]
    assert (counts >= by_quadrant.sum(axis=0)).all()  # the rest: tokens in no quadrant
    row = pq.read_table(tiny_dataset["parquet"]).to_pylist()[24 + 5]
    assert histogram["counts"] == row["all_hook_post_bin_counts"]


def test_the_python_api_gives_the_same_histogram(client, tiny_dataset):
    record = api.open_file(str(tiny_dataset["parquet"])).record(1, 5)
    served = client.get("/neuron_record/tiny-llama/mlp_post_act/1/5").json()["histogram"]
    assert record.histogram.counts == served["counts"]
    edges = record.histogram.edges()
    assert edges[0] == -np.inf and edges[-1] == np.inf and len(edges) == HISTOGRAM_BINS + 1


@pytest.mark.browser
def test_the_neuron_page_draws_the_histogram(page, server_url, client):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(server_url + "/neuron/tiny-llama/mlp_post_act/1/5")
    wait_for_neuron(page, 1, 5)
    figure = page.locator("#summary #histogram")
    expect(figure).to_be_visible()
    record = client.get("/neuron_record/tiny-llama/mlp_post_act/1/5").json()
    counts = record["histogram"]["counts"]
    bars = figure.locator("g[data-bin]")
    shown = {int(bars.nth(i).get_attribute("data-bin")) for i in range(bars.count())}
    assert {i for i, c in enumerate(counts) if c} <= shown  # every bin with tokens is drawn
    titles = [bars.nth(i).locator("title").text_content() for i in range(bars.count())]
    assert sum(int(t.split(": ")[1].split(" ")[0]) for t in titles) == sum(counts)
    assert any("++" in t or "−−" in t or "+−" in t or "−+" in t for t in titles)  # split
    expect(figure.locator(".histogram-legend")).to_contain_text("gate+_in+")
    assert page.evaluate(  # its stylesheet applies
        "getComputedStyle(document.querySelector('#histogram .zero-line')).strokeDasharray"
    ) not in ("", "none")
