"""Tests run offline, with a private NEURONS_HOME, and a registry restored after each test."""

from __future__ import annotations

import contextlib
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("NEURONS_HOME", tempfile.mkdtemp(prefix="neurons-home-"))
os.environ.pop("NEURONS_REGISTER", None)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    # the suite's workers share the cores: torch's threads (and those of every process a test
    # starts) split them, instead of each worker spinning as many threads as there are cores
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (_CORES or 1) // _WORKERS)))

import torch  # noqa: E402  (imports no Triton; transformers and torch.compile do)

if not torch.cuda.is_available():
    # Triton decides when it is imported whether it interprets its kernels: without a GPU, the
    # Triton engine's tests run it on the CPU, under its interpreter.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from registry import registry as _registry  # noqa: E402


@contextlib.contextmanager
def kept_registry():
    """The registry as it was on entry, restored on exit (for fixtures wider than a test)."""
    from registry import explanations as _explanations

    datasets = dict(_registry.NEURON_DATASET_METADATA_REGISTRY)
    models = dict(_registry.MODEL_REGISTRY)
    explanation_sets = {k: list(v) for k, v in _explanations.EXPLANATION_DATASET_REGISTRY.items()}
    explainers = dict(_explanations.EXPLAINER_REGISTRY)
    try:
        yield
    finally:
        _explanations.EXPLANATION_DATASET_REGISTRY.clear()
        _explanations.EXPLANATION_DATASET_REGISTRY.update(explanation_sets)
        _explanations.EXPLAINER_REGISTRY.clear()
        _explanations.EXPLAINER_REGISTRY.update(explainers)
        _registry.NEURON_DATASET_METADATA_REGISTRY.clear()
        _registry.NEURON_DATASET_METADATA_REGISTRY.update(datasets)
        _registry.MODEL_REGISTRY.clear()
        _registry.MODEL_REGISTRY.update(models)


@pytest.fixture(autouse=True)
def restore_registry():
    """Registrations made by a test do not leak into the next."""
    with kept_registry():
        yield


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny Llama, OLMo, Phi-3 (fused gate and in) and GPT-2 folders, made once per run."""
    from tests.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    archs = ("llama", "olmo", "phi3", "gpt2")
    return {arch: make_tiny_model(arch, root / arch) for arch in archs}


@pytest.fixture(scope="session")
def olmo_replicas(tmp_path_factory):
    """Two small replicas of the published OLMo dataset (4 layers × 1100 neurons, 3 shards, the
    card's schema, written by `datasets`): with the library's row groups, and with 1,000-row
    ones (as older versions wrote). Name → (repo folder, columns written)."""
    from tests.replica import write_replica

    root = tmp_path_factory.mktemp("olmo-replicas")
    return {
        "large": (root / "large", write_replica(root / "large", 4, 1100)),
        "small": (root / "small", write_replica(root / "small", 4, 1100, rows_per_group=1000)),
    }


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    """A local Hub (tests/hub.py), online, with HF_ENDPOINT pointing at it and a fresh
    NEURONS_HOME (no bytes or key indexes kept from another test); add repos to it."""
    import huggingface_hub.constants

    from tests.hub import FakeHub

    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "neurons-home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # read at import, so set here too: no snapshot cached by another test is taken for this one
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def olmo_hub(olmo_replicas, local_hub):
    """The replicas as datasets `sjgerstner/replica-large` and `-small` on the local Hub."""
    for name, (folder, _) in olmo_replicas.items():
        local_hub.add_repo(
            "dataset", f"sjgerstner/replica-{name}", str(folder), revisions=("main", "v1")
        )
    return local_hub
