"""`push` to the stand-in Hub through huggingface_hub's upload API, and back through `hf://`: the
same records, the card as huggingface_hub's own DatasetCard reads it, one commit or none."""

from __future__ import annotations

import functools
import json
import math
import os
import re

import pyarrow.parquet as pq
import pytest

from activations.publish import HubPushError, PublishError, push
from activations.records.glu_parquet import GluParquetReader
from activations.records.schema import METADATA_KEY
from tests.activations.records.test_published_readers import as_version_1


def shard_bytes(collated, n: int) -> int:
    """A largest shard size that splits the file into n shards."""
    return math.ceil(os.path.getsize(collated) / n)


def identical(a, b) -> bool:
    """Equal values, NaN (the mean of a quadrant no token reached) equal to itself."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_same_records(path: str, local) -> None:
    table = pq.read_table(local)
    n_neurons = json.loads(table.schema.metadata[METADATA_KEY])["n_neurons"]
    dataset = GluParquetReader(path)
    assert dataset.describe()["n_rows"] == table.num_rows
    for row in range(table.num_rows):
        want = table.slice(row, 1).to_pylist()[0]
        got = dataset.read_record(row // n_neurons, row % n_neurons)
        assert got.keys() == want.keys()
        assert all(identical(got[c], want[c]) for c in want), row
    dataset.close()


def test_push_then_read_back_through_hf(upload_hub, collated):
    result = push(collated, "me/tiny", max_shard_bytes=shard_bytes(collated, 3))
    assert result.path == "hf://datasets/me/tiny" and upload_hub.commits == [
        ("me/tiny", result.commit)
    ]
    shards = [f for f in result.files if f.startswith("data/")]
    assert shards == [f"data/train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert "README.md" in result.files
    assert_same_records(result.path, collated)
    # the published layout: rows at layer * d_mlp + neuron across the shards, in order
    root = upload_hub.repos[("dataset", "me/tiny")].root
    tables = [pq.read_table(f"{root}/{f}", columns=["layer", "neuron"]) for f in shards]
    keys = [(r["layer"], r["neuron"]) for t in tables for r in t.to_pylist()]
    assert keys == [(i // 24, i % 24) for i in range(48)]


def test_the_card_is_valid_and_lists_every_feature(upload_hub, collated):
    from huggingface_hub import DatasetCard

    push(collated, "me/card")
    root = upload_hub.repos[("dataset", "me/card")].root
    card = DatasetCard.load(f"{root}/README.md")
    data = card.data.to_dict()
    schema = pq.read_schema(collated)
    features = data["dataset_info"]["features"]
    assert [f["name"] for f in features] == schema.names
    kinds = {f["name"]: f.get("dtype") or f"list<{f['list']}>" for f in features}
    card_columns = json.load(open("tests/fixtures/olmo_card_columns.json"))["columns"]
    assert all(kinds[name] == kind for name, kind in card_columns)  # the published dtypes
    assert data["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}
    ]
    assert "glu-neuron-activations" in data["tags"] and data["license"] == "mit"
    assert data["dataset_info"]["splits"][0]["num_examples"] == 48
    meta = json.loads(schema.metadata[METADATA_KEY])
    text = card.text
    # the pushing machine's paths are published as their last part only
    for local in (meta["model_path"], meta["corpus"]):
        assert os.path.isabs(local) and local not in text and local not in card.content
    model_dir, corpus = os.path.basename(meta["model_path"]), os.path.basename(meta["corpus"])
    assert data["glu_neurons"]["model_path"] == model_dir
    assert data["glu_neurons"]["corpus"] == corpus
    facts = [model_dir, corpus, meta["corpus_sha256"]["0-20"],
             str(meta["n_tokens"]), "BOS rule", "refactored", "gate+_in-",
             'neuron_dataset_path="hf://datasets/me/card"', 'load_dataset("me/card"']  # fmt: skip
    for fact in facts:
        assert fact in text, fact
    for name in schema.names:  # every column explained
        assert f"| `{name}` |" in text


def test_an_existing_repo_with_files_is_refused_unless_allowed(upload_hub, collated):
    first = push(collated, "me/again", max_shard_bytes=shard_bytes(collated, 3))
    with pytest.raises(PublishError, match=r"exists and holds other files .*--allow-existing"):
        push(collated, "me/again")
    assert len(upload_hub.commits) == 1
    second = push(collated, "me/again", allow_existing=True)  # one shard now: old ones removed
    assert len(upload_hub.commits) == 2 and second.commit != first.commit
    assert any("removed 3 old shard" in n for n in second.notes)
    root = upload_hub.repos[("dataset", "me/again")].root
    assert sorted(os.listdir(f"{root}/data")) == ["train-00000-of-00001.parquet"]
    assert_same_records(second.path, collated)


def test_no_token_is_the_hubs_401_and_a_read_token_its_403(upload_hub, collated, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubPushError, match=r"answered 401 .*HF_TOKEN.*Nothing was committed"):
        push(collated, "me/secret")
    assert ("dataset", "me/secret") not in upload_hub.repos
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    push(collated, "me/theirs")
    monkeypatch.setenv("HF_TOKEN", "hf_read")
    with pytest.raises(HubPushError, match=r"answered 403 .*write access"):
        push(collated, "me/theirs", allow_existing=True)
    assert len(upload_hub.commits) == 1


def test_a_failed_upload_commits_nothing_and_the_next_push_resumes(
    upload_hub, collated, monkeypatch
):
    import huggingface_hub.lfs
    from huggingface_hub.utils import http_backoff

    # the library retries a lost connection five times, over 23 s; here it gives up at once
    monkeypatch.setattr(huggingface_hub.lfs, "http_backoff",
                        functools.partial(http_backoff, max_retries=0))  # fmt: skip
    monkeypatch.setattr("huggingface_hub.hf_api.constants.HF_HUB_DISABLE_XET", True)
    upload_hub.chunk_size = 30_000  # every file in parts: the multi-part upload and its completion
    upload_hub.drop_uploads = 1
    with pytest.raises(HubPushError, match=r"run the same push again.*Nothing was committed"):
        push(collated, "me/resume", max_shard_bytes=shard_bytes(collated, 3))
    assert upload_hub.commits == []
    root = upload_hub.repos[("dataset", "me/resume")].root
    assert not os.path.exists(f"{root}/data")  # nothing half-pushed
    # what the Hub holds now: the files whose upload ran to its end (the library cancels the
    # uploads it had not started when one failed: how many depends on the machine's load)
    held = {name for name in os.listdir(upload_hub.lfs_dir) if re.fullmatch("[0-9a-f]{64}", name)}
    dropped = upload_hub.uploads[0].split("/")[2]
    sent_before = len(upload_hub.uploads)
    result = push(collated, "me/resume", max_shard_bytes=shard_bytes(collated, 3))
    sent = upload_hub.uploads[sent_before:]
    resent = {url.split("/")[2] for url in sent}
    # only what the Hub did not hold: the file whose upload failed, and any not started
    assert dropped in resent and not resent & held, (resent, held)
    assert all("/part/" in url for url in sent)
    assert_same_records(result.path, collated)


def test_partial_and_some_layer_files_are_refused(upload_hub, collated, tmp_path):
    table = pq.read_table(collated)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    cases = {
        "partial": ({**meta, "partial": {"documents_done": 4, "documents_total": 20}},
                    r"partial file \(records of 4 of 20 documents"),
        "layers": ({**meta, "layers": [1], "all_layers": False,
                    "layers_note": "layers 1-1 of 2 only"}, r"layers 1-1 of 2 only.*neurons merge"),
    }  # fmt: skip
    for name, (changed, message) in cases.items():
        out = tmp_path / f"{name}.parquet"
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(changed)}), out)
        with pytest.raises(PublishError, match=message):
            push(out, f"me/{name}")
    shuffled = tmp_path / "shuffled.parquet"
    order = [1, 0, *range(2, table.num_rows)]
    pq.write_table(table.take(order), shuffled)
    with pytest.raises(PublishError, match=r"row 0 holds layer 0 neuron 1.*sorted"):
        push(shuffled, "me/shuffled")
    assert upload_hub.commits == []


def test_a_version_1_file_is_converted_on_the_way_and_said_so(upload_hub, collated, tmp_path):
    old = tmp_path / "old.parquet"
    as_version_1(collated, old)
    result = push(old, "me/old")
    assert any("schema version 1: converted to version 2" in n for n in result.notes)
    assert any("does not say how many layers" in n for n in result.notes)
    assert_same_records(result.path, collated)  # as the file of this version reads


def test_the_token_index_and_explanations_go_beside(upload_hub, collated, tmp_path):
    import shutil

    here = tmp_path / "with-extras.parquet"
    shutil.copy(collated, here)
    shutil.copy(str(collated) + ".tokens.arrow", str(here) + ".tokens.arrow")
    folder = tmp_path / "with-extras.parquet.explanations"
    for layer, neuron in [(0, 3), (1, 17)]:
        (folder / str(layer)).mkdir(parents=True, exist_ok=True)
        line = {"explanation": f"fires on w{neuron}", "score": 0.5}
        (folder / str(layer) / f"{neuron}.jsonl").write_text(json.dumps(line) + "\n")
    result = push(here, "me/extras")
    assert {"extras/tokens.arrow", "explanations/0/3.jsonl", "explanations/1/17.jsonl"} <= set(
        result.files
    )
    root = upload_hub.repos[("dataset", "me/extras")].root
    assert (folder / "1" / "17.jsonl").read_bytes() == open(
        f"{root}/explanations/1/17.jsonl", "rb"
    ).read()
    assert (
        open(f"{root}/extras/tokens.arrow", "rb").read()
        == open(str(collated) + ".tokens.arrow", "rb").read()
    )
    readme = open(f"{root}/README.md").read()
    assert "explanations of 2 neurons" in readme and "the token index" in readme


def test_bad_repo_ids_and_missing_files_say_what_is_valid(upload_hub, collated, tmp_path):
    with pytest.raises(PublishError, match="OWNER/NAME"):
        push(collated, "just-a-name")
    with pytest.raises(FileNotFoundError, match="no such file"):
        push(tmp_path / "missing.parquet", "me/x")
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(PublishError, match="not a Parquet file"):
        push(text, "me/x")
    assert upload_hub.commits == []


def test_dataset_push_in_the_python_api(upload_hub, collated):
    from activations import api

    dataset = api.open_file(str(collated))
    result = dataset.push("me/api", private=True)
    assert result.path == "hf://datasets/me/api" and ("dataset", "me/api") in upload_hub.private
    assert_same_records(result.path, collated)
    elsewhere = dataset.metadata.model_copy(update={"neuron_dataset_path": result.path})
    remote = api.Dataset(elsewhere, dataset.session)
    with pytest.raises(ValueError, match="only local files are pushed"):
        remote.push("me/again")


def test_a_file_in_the_layout_is_its_own_shard_byte_for_byte(upload_hub, collated):
    result = push(collated, "me/as-it-is")
    assert [f for f in result.files if f.startswith("data/")] == [
        "data/train-00000-of-00001.parquet"
    ]
    root = upload_hub.repos[("dataset", "me/as-it-is")].root
    with open(f"{root}/data/train-00000-of-00001.parquet", "rb") as pushed:
        assert pushed.read() == collated.read_bytes()


def test_datasets_of_the_users_followed_by_one_who_follows_nobody_are_none(upload_hub, collated):
    from activations.publish.listing import hub_datasets

    push(collated, "me/listed")
    upload_hub.following["loner"] = []
    assert [d.repo_id for d in hub_datasets(following="loner")] == []
    upload_hub.following["fan"] = ["me"]
    assert [d.repo_id for d in hub_datasets(following="fan")] == ["me/listed"]
    assert "me/listed" in [d.repo_id for d in hub_datasets()]  # no owner named: anyone's
