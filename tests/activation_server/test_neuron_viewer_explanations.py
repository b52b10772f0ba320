"""neuron_viewer's explanation panes against this server, in headless Chromium from another
origin (tests/fixtures/neuron_explainer_client/explanations.html replays its requests): a
model-generated explanation and its score for a neuron of a GLU dataset and of a TDB JSON
dataset, and its "Score explanation" box scoring a typed text."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from registry.explanations import register_explainer
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer, RangeServer
from tests.tiny_chat import make_tiny_chat_model

CLIENT = Path(__file__).parents[1] / "fixtures" / "neuron_explainer_client" / "explanations.html"
TDB = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"


@pytest.mark.browser
@pytest.mark.parametrize(
    ("dataset", "layer", "node"), [("tdb-fixture", 5, 42), ("tiny-llama", 1, 7)]
)
def test_its_explanation_panes_show_ours(page, tiny_dataset, tmp_path, monkeypatch, dataset, layer, node):  # noqa: E501  # fmt: skip
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    register_tiny(tiny_dataset)
    registry.register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "TDB", str(TDB))
    registry.register_model("tiny-chat", str(make_tiny_chat_model(tmp_path / "chat", seed=7)))
    register_explainer("embedded", "in_process", "tiny-chat")  # the viewer names no explainer
    settings = ServerSettings(max_tokens_per_request=40)
    pages = RangeServer({"/explanations.html": CLIENT.read_bytes()})
    try:
        with LiveServer(create_app(settings), settings) as server:
            query = urlencode(
                {"server": f"http://localhost:{server.port}", "dataset": dataset,
                 "dst": "mlp_post_act", "layer": layer, "node": node, "typed": "w1 and kings"}
            )  # fmt: skip
            origin = f"http://localhost:{pages.httpd.server_address[1]}"
            page.goto(f"{origin}/explanations.html?{query}")
            page.locator("body[data-done=true]").wait_for()
            shown = page.locator("#explanations").inner_text()
            if dataset == "tiny-llama":  # the positive activations' and each quadrant's
                rows = page.locator("#explanations .row")
                assert rows.count() >= 2 and "tiny-llama-explanations gate" in shown
            assert "loading..." not in shown and re.search(r"-?\d\.\d\d", shown)
            scored = page.locator("#scored").inner_text()
            assert re.fullmatch(r"Scoring explanation w1 and kings score -?\d\.\d\d", scored)
    finally:
        pages.close()
