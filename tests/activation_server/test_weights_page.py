"""The weight views in the pages, in headless Chromium over a live server on the tiny dataset with
a fresh $NEURONS_HOME: the neuron page's panel shows what GET /weights answers at once, while
the model's table is computed (held back here until the test lets it be) and the classes page
says so; then its link opens the classes page, whose bars count what GET /classes answers."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator

import httpx
import pytest

from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.weights import views
from tests.activation_server.conftest import register_tiny
from tests.activation_server.test_viewer import wait_for_neuron
from tests.servers import LiveServer

COMPUTING = "computing the weight views of tiny-llama"


def test_classes_page_is_served_but_not_in_the_api_schema(client):
    response = client.get("/plots/classes/tiny-llama")
    assert response.status_code == 200
    assert '<script type="module" src="/static/js/classes.js">' in response.text
    for module in ("classes", "weights"):
        script = client.get(f"/static/js/{module}.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'id="weights"' in client.get("/").text
    assert not any(p.startswith("/plots") for p in client.get("/openapi.json").json()["paths"])


@pytest.fixture
def held(monkeypatch, tmp_path) -> Iterator[threading.Event]:
    """A fresh home, and the views' computation held until the event is set."""
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    release = threading.Event()
    compute = views.compute_all

    def held_back(*args, **kwargs):
        assert release.wait(120), "the test never let the views be computed"
        return compute(*args, **kwargs)

    monkeypatch.setattr(views, "compute_all", held_back)
    yield release
    release.set()


@pytest.fixture
def live(tiny_dataset, held) -> Iterator[str]:
    register_tiny(tiny_dataset)
    settings = ServerSettings(max_tokens_per_request=40)
    with LiveServer(create_app(settings), settings) as server:
        yield server.url


def shown(token: str) -> str:
    """A token as the panel writes it (weights.js shownToken)."""
    return token.replace("\n", "↵").replace("\t", "⇥") or "∅"


def close(text: str, value: float | None) -> bool:
    """The page's three significant digits (dom.js fmt) of a value."""
    if value is None:
        return text == "—"
    return math.isclose(float(text), value, rel_tol=5e-3, abs_tol=1e-12)


def bars(page, chart: str) -> dict[str, dict[int, int]]:
    """{name: {layer: count}} of a chart's rects, each checked against its <title>."""
    rects = page.locator(f"#{chart} g.bar rect").evaluate_all(
        """rects => rects.map(r => [r.parentNode.dataset.layer, r.dataset.name,
            r.dataset.count, r.querySelector('title').textContent])"""
    )
    found: dict[str, dict[int, int]] = {}
    for layer, name, count, title in rects:
        assert title.startswith(f"layer {layer} · {name}: {count}")
        found.setdefault(name, {})[int(layer)] = int(count)
    return found


@pytest.mark.browser
def test_weight_panel_and_classes_page_in_chromium(page, live, held):
    from playwright.sync_api import expect

    api = httpx.Client(base_url=live, timeout=120)

    # the record is shown at once, and its weight panel too, while the model's table is held
    page.goto(live + "/neuron/tiny-llama/mlp_post_act/0/5")
    wait_for_neuron(page, 0, 5)
    panel = page.locator("#weights")
    expect(panel).to_have_attribute("data-state", "done")
    view = api.get("/weights/tiny-llama/0/5").json()
    expect(panel.locator("[data-io-class]")).to_have_text(view["ioClass"])
    for key in ("cosGateIn", "cosGateOut", "cosInOut"):
        assert close(panel.locator(f"[data-cos={key}]").inner_text(), view[key]), key
        assert close(panel.locator(f"[data-raw-cos={key}]").inner_text(), view["raw"][key])
    expect(panel.locator("[data-raw-class]")).to_have_text(view["raw"]["ioClass"])
    expect(panel).to_contain_text("through the scale of the norm before its MLP")
    first = panel.locator("[data-list=promotes] li").first
    assert first.locator("code").text_content() == shown(view["promotes"][0]["token"])
    assert first.get_attribute("title").startswith(f"token {view['promotes'][0]['tokenId']}:")
    for key in ("promotes", "suppresses", "opensGate", "closesGate", "drivesInUp"):
        expect(panel.locator(f"[data-list={key}] li code")).to_have_count(len(view[key]))
    expect(page.locator("#error")).to_be_hidden()
    assert api.get("/classes/tiny-llama").json()["state"] == "computing"  # still held

    # the classes page while computing: the server's note, and its progress
    plots = page.context.browser.new_page()
    errors: list[str] = []
    plots.on("pageerror", lambda error: errors.append(str(error)))
    plots.goto(live + "/plots/classes/tiny-llama")
    expect(plots.locator("#status")).to_contain_text(COMPUTING)
    expect(plots.locator("#classes")).to_have_attribute("data-state", "computing")
    assert plots.locator("#classes").is_hidden()

    held.set()
    # another neuron, once the table holds it: the same view as GET /weights answers
    page.click("#next")
    wait_for_neuron(page, 0, 6)
    expect(panel).to_have_attribute("data-state", "done")
    view = api.get("/weights/tiny-llama/0/6").json()
    expect(panel.locator("[data-io-class]")).to_have_text(view["ioClass"])

    # the classes page polled until ready, and the panel's link opens it: bars as /classes
    expect(plots.locator("#classes")).to_have_attribute("data-state", "ready")
    expect(plots.locator("#classes-progress")).to_be_hidden()
    plots.close()
    assert not errors, f"script errors in the classes page: {errors}"
    panel.locator("a", has_text="classes").click()
    page.wait_for_url(re.compile(r"/plots/classes/tiny-llama$"))
    expect(page.locator("#classes")).to_have_attribute("data-state", "ready")
    counts = api.get("/classes/tiny-llama").json()
    assert counts["state"] == "ready" and counts["layers"] == [0, 1]
    for chart, key in (("class-chart", "classes"), ("family-chart", "families")):
        want = {
            name: dict(zip(counts["layers"], per_layer, strict=True))
            for name, per_layer in counts[key].items()
        }
        assert bars(page, chart) == want
    total = {layer: 0 for layer in counts["layers"]}
    for per_layer in bars(page, "class-chart").values():
        for layer, n in per_layer.items():
            total[layer] += n
    assert set(total.values()) == {counts["neuronsPerLayer"]}
    legend = page.locator("#class-legend .legend-item").all_inner_texts()
    assert len(legend) == len(counts["classes"])
    expect(page.locator("#error")).to_be_hidden()

    # back on a neuron: another error than computing is said in the panel, not the page
    page.route(
        "**/weights/tiny-llama/1/2",
        lambda route: route.fulfill(status=502, json={"detail": "cannot read the weights"}),
    )
    page.goto(live + "/neuron/tiny-llama/mlp_post_act/1/2")
    wait_for_neuron(page, 1, 2)
    expect(panel).to_have_attribute("data-state", "error")
    expect(panel.locator(".error")).to_have_text("cannot read the weights")
    expect(page.locator("#error")).to_be_hidden()
