"""A collated file of a tiny model (row groups of 8, so that it makes several shards), and the
local Hub with its upload endpoints, online, the push's token set."""

from __future__ import annotations

import pytest

import registry
from activations.collate import CollateConfig, collate
from tests.tiny import random_documents, write_jsonl

ROWS_PER_GROUP = 8


@pytest.fixture(scope="session")
def collated(tmp_path_factory, tiny_models):
    """tiny Llama (2 layers x 24 neurons) over 20 documents, top-16: 48 rows."""
    root = tmp_path_factory.mktemp("collated")
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(root / "docs.jsonl", random_documents(20, seed=4))
    return collate(
        CollateConfig(
            model="tiny-llama", out=str(root / "tiny.parquet"), corpus=str(corpus), top_k=16,
            batch_size=5, engine="eager", progress=False, rows_per_group=ROWS_PER_GROUP,
        )
    )  # fmt: skip


@pytest.fixture
def upload_hub(monkeypatch, tmp_path, local_hub):
    """The stand-in Hub (tests/hub_upload.py) in local_hub's place: HF_ENDPOINT at it, a write
    token in HF_TOKEN, uploads through LFS (HF_HUB_DISABLE_XET: the stand-in speaks no Xet)."""
    import huggingface_hub.constants

    from tests.hub_upload import UploadHub

    local_hub.stop()
    hub = UploadHub(str(tmp_path / "hub-storage")).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        yield hub
    finally:
        hub.stop()
