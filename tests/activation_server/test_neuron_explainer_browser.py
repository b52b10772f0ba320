"""neuron-explainer's viewer, as its pages call this server from another origin, in headless
Chromium (tests/fixtures/neuron_explainer_client: the same requests and the same `.map` over
each token sequence as neuron_viewer's welcome page and datasetExamples pane)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer, RangeServer

CLIENT = Path(__file__).parents[1] / "fixtures" / "neuron_explainer_client" / "index.html"
TDB = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"


@pytest.mark.browser
@pytest.mark.parametrize(
    ("dataset", "dst", "layer", "node"),
    [("tdb-fixture", "mlp_post_act", 5, 42), ("tiny-llama", "mlp_post_act", 1, 7)],
)
def test_its_pages_render_our_records(page, tiny_dataset, dataset, dst, layer, node):
    register_tiny(tiny_dataset)
    registry.register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "TDB", str(TDB))
    settings = ServerSettings(max_tokens_per_request=40)
    pages = RangeServer({"/index.html": CLIENT.read_bytes()})  # another origin, as :1234 is
    try:
        with LiveServer(create_app(settings), settings) as server:
            query = urlencode(
                {"server": f"http://localhost:{server.port}", "dataset": dataset, "dst": dst,
                 "layer": layer, "node": node}
            )  # fmt: skip
            origin = f"http://localhost:{pages.httpd.server_address[1]}"
            page.goto(f"{origin}/index.html?{query}")
            page.locator("body[data-done=true]").wait_for()
            assert page.locator("#datasets li").count() >= 10
            tokens = page.locator("#examples .token")
            assert tokens.count() > 20
            assert page.locator("#examples .sequence").count() >= 4
            assert tokens.first.get_attribute("title").startswith("Activation: ")
            assert page.locator("#status").inner_text() == f"done {dataset}"
    finally:
        pages.close()
