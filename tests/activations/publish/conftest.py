"""A collated file of a tiny model (row groups of 8, so that it makes several shards), and the
local Hub with its upload endpoints (tests/hub_upload.py)."""

from __future__ import annotations

import pytest

import registry
from activations.collate import CollateConfig, collate
from registry import registry as registry_store
from tests.hub_upload import serve_uploads
from tests.tiny import random_documents, write_jsonl

ROWS_PER_GROUP = 8


@pytest.fixture(scope="session")
def collated(tmp_path_factory, tiny_models):
    """tiny Llama (2 layers x 24 neurons) over 20 documents, top-16: 48 rows."""
    root = tmp_path_factory.mktemp("collated")
    models_before = dict(registry_store.MODEL_REGISTRY)
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(root / "docs.jsonl", random_documents(20, seed=4))
    try:
        return collate(
            CollateConfig(
                model="tiny-llama", out=str(root / "tiny.parquet"), corpus=str(corpus),
                top_k=16, batch_size=5, engine="eager", progress=False,
                rows_per_group=ROWS_PER_GROUP,
            )
        )  # fmt: skip
    finally:  # a session fixture: the registry stays as other tests expect it
        registry_store.MODEL_REGISTRY.clear()
        registry_store.MODEL_REGISTRY.update(models_before)


@pytest.fixture
def upload_hub(monkeypatch, tmp_path, local_hub):
    """The local Hub with its upload endpoints (tests/hub_upload.py), a write token set."""
    yield from serve_uploads(monkeypatch, tmp_path, local_hub)
