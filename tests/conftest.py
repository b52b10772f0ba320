"""Tests run offline, with a private NEURONS_HOME, and a registry restored after each test."""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("NEURONS_HOME", tempfile.mkdtemp(prefix="neurons-home-"))
os.environ.pop("NEURONS_REGISTER", None)

import pytest  # noqa: E402

from registry import registry as _registry  # noqa: E402


@pytest.fixture(autouse=True)
def restore_registry():
    """Registrations made by a test do not leak into the next."""
    datasets = dict(_registry.NEURON_DATASET_METADATA_REGISTRY)
    models = dict(_registry.MODEL_REGISTRY)
    yield
    _registry.NEURON_DATASET_METADATA_REGISTRY.clear()
    _registry.NEURON_DATASET_METADATA_REGISTRY.update(datasets)
    _registry.MODEL_REGISTRY.clear()
    _registry.MODEL_REGISTRY.update(models)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny Llama, OLMo, Phi-3 (fused gate and in) and GPT-2 folders, made once per run."""
    from tests.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    archs = ("llama", "olmo", "phi3", "gpt2")
    return {arch: make_tiny_model(arch, root / arch) for arch in archs}
