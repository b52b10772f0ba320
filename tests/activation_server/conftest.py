"""A server over a dataset collated from a tiny Llama, with that model registered for live runs."""

from __future__ import annotations

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
