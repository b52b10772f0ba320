"""A server over a dataset collated from a tiny Llama, with that model registered for live runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.collate import CollateConfig, collate
from registry import registry as registry_store
from tests.tiny import make_tiny_model, random_documents, write_jsonl

N_DOCS = 9


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    model = make_tiny_model("llama", root / "model")
    corpus = write_jsonl(root / "docs.jsonl", random_documents(N_DOCS, seed=5))
    models_before = dict(registry_store.MODEL_REGISTRY)
    registry.register_model("tiny-llama", str(model), user_visible_name="Tiny Llama")
    try:
        out = collate(
            CollateConfig(
                model="tiny-llama",
                out=str(root / "tiny.parquet"),
                corpus=str(corpus),
                top_k=4,
                batch_size=4,
                engine="eager",
                progress=False,
            )
        )
    finally:  # a session fixture: keep the registry as other tests expect it
        registry_store.MODEL_REGISTRY.clear()
        registry_store.MODEL_REGISTRY.update(models_before)
    return {"model": model, "corpus": corpus, "parquet": out}


def register_tiny(paths: dict[str, Path]) -> None:
    registry.register_model("tiny-llama", str(paths["model"]), user_visible_name="Tiny Llama")
    for dst in ("mlp_post_act", "mlp_pre_act"):
        registry.register_neuron_dataset_metadata(
            "tiny-llama",
            dst,
            "Tiny Llama",
            str(paths["parquet"]),
            format="glu_parquet",
            model="tiny-llama",
            corpus=str(paths["corpus"]),
        )


@pytest.fixture
def client(tiny_dataset):
    register_tiny(tiny_dataset)
    with TestClient(
        create_app(ServerSettings(max_tokens_per_request=40)), base_url="http://127.0.0.1"
    ) as test_client:
        yield test_client


TIMEOUT_MS = 60_000  # the first live run loads the model
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser test: `pip install playwright` (or `pip install -e '.[dev]'`)")
    if not shutil.which(CHROMIUM):
        pytest.skip("browser test: `apt-get install chromium` to provide /usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert not errors, f"script errors in the page: {errors}"
        finally:
            browser.close()
