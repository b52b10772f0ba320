"""A collation says how far it has come beside its output, writes the records so far at each
checkpoint (--partial), and a server shows them until the output exists."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.collate import CollateConfig, collate
from activations.collate.progress import partial_path, progress_path, read_progress
from activations.records.schema import METADATA_KEY
from tests.servers import LOCAL
from tests.tiny import random_documents, write_jsonl


@pytest.fixture
def setup(tmp_path, tiny_models):
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(12, seed=2))
    out = tmp_path / "f.parquet"
    registry.register_glu_dataset("tiny", str(out), model="tiny-llama", corpus=str(corpus))
    config = CollateConfig(
        model="tiny-llama", out=str(out), corpus=str(corpus), top_k=4, batch_size=2,
        checkpoint_every=4, partial=True, engine="eager", progress=False,
    )  # fmt: skip
    return config, out


def test_progress_and_the_records_so_far_while_it_runs(setup):
    config, out = setup
    seen = []

    def look(next_doc: int) -> None:
        progress = read_progress(out)
        answer = None
        if partial_path(out).exists():
            with TestClient(create_app(ServerSettings()), base_url=LOCAL) as client:
                answer = client.get("/neuron_record/tiny/mlp_post_act/1/3")
                runs = client.get("/progress").json()
            assert [r["shortNames"] for r in runs] == [["tiny"]] and runs[0]["partial"]
        seen.append((next_doc, progress, answer))

    collate(config, on_batch=look)
    states = {p["state"] for _, p, _ in seen}
    assert states == {"collating"}
    done = [p["documents_done"] for _, p, _ in seen]  # written at most twice a second
    assert all(p["documents_total"] == 12 for _, p, _ in seen)
    assert done == sorted(done) and all(d <= n for d, (n, _, _) in zip(done, seen, strict=True))
    answered = [(n, a) for n, _, a in seen if a is not None]
    assert answered and answered[0][0] == 4  # from the first checkpoint on
    for n, answer in answered:
        assert answer.status_code == 200, answer.text
        partial = answer.json()["fileMetadata"]["partial"]
        assert partial["documentsTotal"] == 12 and partial["documentsDone"] <= n
        # the value histogram of the documents so far, every token counted once
        tokens_so_far = answer.json()["fileMetadata"]["nTokens"]
        assert 0 < sum(answer.json()["histogram"]["counts"]) == tokens_so_far
    # the end: the output, and neither the partial records nor the progress beside it
    assert out.exists() and not partial_path(out).exists() and not progress_path(out).exists()
    meta = json.loads(pq.read_schema(out).metadata[METADATA_KEY])
    assert "partial" not in meta and meta["n_documents"] == 12


def test_a_failed_run_says_why(setup, monkeypatch):
    config, out = setup
    from activations.collate import run

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(run, "load_model", broken)
    with pytest.raises(RuntimeError):
        collate(config)
    progress = read_progress(out)
    assert progress["state"] == "failed" and "out of memory" in progress["why"]
