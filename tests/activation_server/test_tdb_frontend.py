"""transformer-debugger's own frontend (its `neuron_viewer`, built unmodified) against this
server, in headless Chromium: the real bundle, not a page that replays its requests.

Opt-in: NEURONS_TDB_BUILD names the built bundle (`neuron_viewer/dist`, or `neuron_viewer`
after `npm run build`), built with NEURON_VIEWER_ACTIVATION_SERVER_URL=http://localhost:PORT;
the server is started on the port the bundle names, the bundle served from another origin as
`npm start` serves it. Checked:

- a neuron's page, of a GLU dataset of the embedded model and of a TDB JSON dataset: every
  model-generated explanation with its score, the dataset examples, the logit lens, a typed
  prompt's activations, and a typed explanation scored by its "Score explanation" box, every
  request answered and no pane saying it failed;
- the debugger (`/smollm2-135m/tdb_alpha`): its prompt run, the node table, and an ablation
  from a row's "Actions" sent with the plain prompt and shown beside it.

Explanations are written by a tiny chat model registered as the default explainer (the
embedded model's own explaining is tested in test_explain_embedded.py). Screenshots go to
NEURONS_TDB_SHOTS where it names a folder."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.collate import CollateConfig, collate
from activations.collate.registration import register_file
from registry.builtin import EMBEDDED_MODEL
from registry.explanations import register_explainer
from registry.locations import model_cache_dir
from tests.conftest import kept_registry
from tests.servers import LiveServer
from tests.tiny_chat import make_tiny_chat_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BUILD_ENV = "NEURONS_TDB_BUILD"
NOT_BUILT = (
    f"{BUILD_ENV} does not name a built transformer-debugger frontend: build its neuron_viewer "
    "with NEURON_VIEWER_ACTIVATION_SERVER_URL=http://localhost:PORT npm run build and set "
    f"{BUILD_ENV} to its dist folder (docs/debugger.md)"
)
SERVER_URL = re.compile(r'"(https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(\d+))"')
TDB = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"
TIMEOUT_MS = 600_000  # the embedded model's first passes on a shared CPU
FAILED = ("Failed to load data", "loading...", "Error:", "Unknown error")
PROMPT = "To be, or not to be, that is the question."
TYPED = "words about kings and queens"


class Served(NamedTuple):
    api: str
    """This server, where the bundle sends its requests."""
    origin: str
    """The bundle's pages."""


def built_bundle() -> tuple[Path, str, int]:
    """The bundle's folder, the server address built into it and its port."""
    named = os.environ.get(BUILD_ENV)
    if not named:
        pytest.skip(f"TDB's frontend: set {BUILD_ENV} to its built bundle (docs/debugger.md)")
    found = [d for d in (Path(named), Path(named) / "dist") if (d / "index.html").is_file()]
    if not found:
        pytest.fail(f"{named}: no index.html. {NOT_BUILT}")
    dist = found[0]
    urls = {
        m.group(1): int(m.group(2))
        for js in dist.glob("*.js")
        for m in SERVER_URL.finditer(js.read_text(errors="replace"))
    }
    if len(urls) != 1:
        pytest.fail(f"{dist}: server addresses built in: {sorted(urls) or 'none'}. {NOT_BUILT}")
    ((url, port),) = urls.items()
    return dist, url, port


class BundleServer:
    """The bundle over HTTP as `npm start` serves it: its files, and its index.html for any
    other path (the app's own routes, such as /smollm2-135m/tdb_alpha)."""

    def __init__(self, dist: Path) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(dist), **kwargs)

            def send_head(self):
                if not Path(self.translate_path(self.path)).is_file():
                    self.path = "/index.html"
                return super().send_head()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """This server on the bundle's port, with a small GLU dataset of the embedded model (layer
    3 of four Shakespeare documents), the TDB JSON fixture and a tiny chat explainer."""
    dist, url, port = built_bundle()
    root = tmp_path_factory.mktemp("tdb-frontend")
    home = root / "home"
    home.mkdir()
    model_cache_dir().mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(model_cache_dir())  # the embedded model converted once
    with pytest.MonkeyPatch.context() as patch, kept_registry():
        patch.setenv("NEURONS_HOME", str(home))
        chat = make_tiny_chat_model(root / "chat", seed=7)
        registry.register_model("tiny-chat", str(chat))
        register_explainer("embedded", "in_process", "tiny-chat")  # the frontend names none
        registry.register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "TDB", str(TDB))
        config = CollateConfig(
            model=EMBEDDED_MODEL, out=str(root / "smol.parquet"), max_docs=4, max_tokens=128,
            layers=[3], progress=False,
        )  # fmt: skip
        register_file(str(collate(config)))
        settings = ServerSettings()
        pages = BundleServer(dist)
        try:
            with LiveServer(create_app(settings), settings, port=port):
                yield Served(url, pages.origin)
        finally:
            pages.close()


@pytest.fixture
def tdb_page(page):
    """The browser page, its waits long enough for the embedded model, every answer it got
    recorded (URL, status, request body)."""
    page.set_default_timeout(TIMEOUT_MS)
    page.answers = []
    page.on("response", lambda r: page.answers.append((r.url, r.status, r.request.post_data)))
    return page


def answers_to(page, served: Served, route: str) -> list[tuple[int, dict | None]]:
    """This server's answers to a route so far: status and the request's JSON body."""
    return [
        (status, json.loads(body) if body else None)
        for url, status, body in page.answers
        if url.split("?")[0] == served.api + route
    ]


def wait_for_answers(page, served: Served, route: str, count: int = 1):
    """Until this server has answered the route `count` times (the page's events run
    meanwhile); its answers."""
    for _ in range(TIMEOUT_MS // 250):
        if len(found := answers_to(page, served, route)) >= count:
            return found
        page.wait_for_timeout(250)
    raise AssertionError(f"{route} was not answered {count} times: {page.answers}")


def failed_answers(page) -> list[tuple[str, int]]:
    return [(url, status) for url, status, _ in page.answers if status >= 400]


def shown(page) -> str:
    """The page's text, whitespace collapsed."""
    return " ".join(page.locator("body").inner_text().split())


def wait_for_text(page, pattern: str) -> None:
    """Until the page's text (whitespace collapsed) matches the regular expression."""
    page.wait_for_function(
        "p => new RegExp(p).test(document.body.innerText.split(/\\s+/).join(' '))",
        arg=pattern,
    )


def screenshot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("NEURONS_TDB_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def post(served: Served, route: str, body: dict) -> dict:
    answer = httpx.post(served.api + route, json=body, timeout=TIMEOUT_MS / 1000)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("dataset", "layer", "neuron"), [(EMBEDDED_MODEL, 3, 100), ("tdb-fixture", 5, 42)]
)
def test_its_neuron_page_shows_every_pane(tdb_page, served, tmp_path, dataset, layer, neuron):
    page = tdb_page
    node = {"dst": "mlp_post_act", "layerIndex": layer, "activationIndex": neuron}
    explained = post(served, "/explain", {**node, "datasets": [dataset]})["scoredExplanations"]
    scores = [f"{e['score']:.2f}" for e in explained if e["score"]]
    assert scores, f"no explanation of {dataset} was scored: {explained}"
    page.goto(f"{served.origin}/{dataset}/mlp_neuron/{layer}/{neuron}")
    try:
        for route in ("/existing_explanations", "/neuron_record", "/batched"):
            assert [status for status, _ in wait_for_answers(page, served, route)] == [200]
        page.get_by_text("Output tokens upvoted by this component").wait_for()  # the logit lens
        page.locator(".flow-root ul").get_by_text("Random").wait_for()  # the dataset examples
        for scored in explained:  # the explanation pane: each one, with its score
            wait_for_text(page, re.escape(" ".join(scored["explanation"].split())))
        text = shown(page)
        assert all(score in text for score in scores), (scores, text)

        box = page.locator("textarea#comment")  # "Interact with the model": a prompt's values
        box.fill(PROMPT)
        box.press("Meta+Enter")
        assert [status for status, _ in wait_for_answers(page, served, "/derived_scalars")] == [200]
        page.wait_for_function("() => !document.querySelector('.animate-spin')")
        page.get_by_role("button", name="Score explanation").click()  # and a typed explanation
        box.fill(TYPED)
        box.press("Meta+Enter")
        ((status, typed),) = wait_for_answers(page, served, "/score")
        assert status == 200
        assert typed == {**node, "datasets": [dataset], "explanation": TYPED, "maxSequences": 2}
        # its pills are inline boxes, next to the words without a space in the page's text
        wait_for_text(page, f"Scoring explanation ?{TYPED} ?score ?-?\\d+\\.\\d\\d")
    finally:
        screenshot(page, tmp_path, f"neuron-{dataset}-{layer}-{neuron}")
    text = shown(page)
    assert not [f for f in FAILED if f in text], text
    assert not failed_answers(page)


def test_its_debugger_runs_a_prompt_and_ablates_a_node(tdb_page, served, tmp_path):
    page = tdb_page
    page.goto(f"{served.origin}/{EMBEDDED_MODEL}/tdb_alpha")
    try:
        rows = page.locator(".ag-center-cols-container .ag-row")
        rows.first.wait_for()  # the node table: a row and its detail row per node
        assert rows.count() >= 10
        (status, first), *_ = wait_for_answers(page, served, "/batched_tdb")
        assert status == 200 and first["subRequests"][0]["nodeAblations"] == []
        screenshot(page, tmp_path, "tdb_alpha")
        ablated = page.locator(".ag-pinned-left-cols-container [col-id=name]").first.inner_text()

        page.get_by_role("button", name="Actions").first.click()
        page.get_by_text("Ablate", exact=True).click()
        status, second = wait_for_answers(page, served, "/batched_tdb", count=2)[-1]
        assert status == 200
        sent = second["subRequests"]  # the ablated prompt and the plain one
        assert len(sent) == 2 and len(sent[0]["nodeAblations"]) == 1
        assert sent[1]["nodeAblations"] == []
        page.get_by_text("Active ablations").wait_for()
        page.get_by_role("columnheader", name="Diff").first.wait_for()  # left, right, difference
        assert ablated.strip() in page.get_by_role("grid", name="Ablations").inner_text()
    finally:
        screenshot(page, tmp_path, "tdb_alpha-ablated")
    text = shown(page)
    assert not [f for f in FAILED if f in text], text
    for url, status, body in page.answers:  # the node table asks explanations of its nodes:
        if status >= 400:  # only nodes without a dataset (heads, other layers) have none
            node = json.loads(body)
            assert url == served.api + "/explain" and status == 404, (url, status, body)
            assert (node["dst"], node["layerIndex"]) != ("mlp_post_act", 3), body
