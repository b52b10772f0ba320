"""Dataset.explain, Dataset.score and Dataset.explanations in the Python API: the same service
as the server, stored in the same explanation datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

import registry
from activations import api
from registry.explanations import register_explainer
from tests.tiny_chat import make_tiny_chat_model

FIXTURES = Path(__file__).parents[2] / "fixtures" / "tdb" / "collated-activations"


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONS_HOME", str(tmp_path / "home"))
    registry.register_model("tiny-chat", str(make_tiny_chat_model(tmp_path / "chat", seed=6)))
    register_explainer("tiny", "in_process", "tiny-chat")
    registry.register_neuron_dataset_metadata("tdb-fixture", "mlp_post_act", "T", str(FIXTURES))
    session = api.Session()
    try:
        yield session.open_dataset("tdb-fixture")
    finally:
        session.close()


def test_explain_score_and_read_back(dataset, tmp_path):
    assert dataset.explanations(5, 42) == []
    views = dataset.explain(5, 42, explainer="tiny")
    assert len(views) == 1 and views[0].name == "tdb-fixture-explanations"
    assert views[0].explanations and views[0].explanations[0].sequences
    scored = dataset.score(5, 42, "numbers and dates", explainer="tiny")
    assert scored.explanation == "numbers and dates" and scored.sequences
    texts = [e.explanation for e in dataset.explanations(5, 42)[0].explanations]
    assert "numbers and dates" in texts
    assert (tmp_path / "home/explanations/tdb-fixture/mlp_post_act/5/42.jsonl").exists()
