"""GET /datasets with each dataset's shape, GET /schema: what the viewer reads instead of
guessing from error messages."""

from __future__ import annotations

import registry
from registry.vocabulary import GLU_HOOKS, QUADRANTS
from tests.servers import RangeServer


def entry(client, short_name: str, dst: str = "mlp_post_act", **query) -> dict:
    params = {"model": short_name, "dst": dst, **query}
    found = [
        d for d in client.get("/datasets", params=params).json() if d["shortName"] == short_name
    ]
    assert len(found) == 1
    return found[0]


def test_a_local_dataset_has_its_shape(client, tiny_dataset):
    got = entry(client, "tiny-llama")
    assert got["shape"] == {
        "layers": [0, 1],
        "neuronsPerLayer": 24,
        "topK": 4,
        "hooks": list(GLU_HOOKS),
        "corpus": "…/docs.jsonl",
    }
    assert got["shapeNote"] is None
    # the registry's fields stay, the server's own paths cut to their last part
    assert got["neuronDatasetPath"] == "…/tiny.parquet"
    record = client.get("/neuron_record/tiny-llama/mlp_post_act/0/3").json()
    assert record["dataset"]["neuronDatasetPath"] == "…/tiny.parquet"  # records too


def test_paths_are_shown_where_the_server_is_told_to(tiny_dataset):
    from fastapi.testclient import TestClient

    from activation_server.app import create_app
    from activation_server.settings import ServerSettings
    from tests.activation_server.conftest import register_tiny
    from tests.servers import LOCAL

    register_tiny(tiny_dataset)
    with TestClient(create_app(ServerSettings(expose_paths=True)), base_url=LOCAL) as client:
        got = entry(client, "tiny-llama")
        assert got["neuronDatasetPath"] == str(tiny_dataset["parquet"])
        assert got["shape"]["corpus"] == str(tiny_dataset["corpus"].resolve())
        record = client.get("/neuron_record/tiny-llama/mlp_post_act/0/3").json()
        assert record["dataset"]["neuronDatasetPath"] == str(tiny_dataset["parquet"])
        missing = client.get("/neuron_record/tiny-llama/mlp_post_act/9/0").json()["detail"]
        assert "valid layers are 0-1" in missing


def test_a_missing_local_dataset_says_how_to_build_it(client, tmp_path):
    missing = tmp_path / "nope.parquet"
    registry.register_neuron_dataset_metadata(
        "ghost", "mlp_post_act", "Ghost", str(missing), format="glu_parquet", model="tiny-llama"
    )
    got = entry(client, "ghost")
    assert got["shape"] is None
    assert "does not exist" in got["shapeNote"] and "neurons collate" in got["shapeNote"]
    assert str(tmp_path) not in got["shapeNote"] and "…/nope.parquet" in got["shapeNote"]
    detail = client.get("/neuron_record/ghost/mlp_post_act/0/0").json()["detail"]
    assert "…/nope.parquet does not exist" in detail and str(tmp_path) not in detail


def test_a_remote_dataset_is_not_opened_unless_asked(client, tiny_dataset):
    server = RangeServer({"/tiny.parquet": tiny_dataset["parquet"].read_bytes()})
    try:
        registry.register_neuron_dataset_metadata(
            "far", "mlp_post_act", "Far", server.url("/tiny.parquet"), format="glu_parquet"
        )
        got = entry(client, "far")
        assert got["shape"] is None and "once it is opened" in got["shapeNote"]
        assert server.requests == []  # listing the catalog read nothing
        opened = entry(client, "far", open="true")
        assert opened["shape"]["layers"] == [0, 1] and opened["shape"]["neuronsPerLayer"] == 24
        assert server.requests  # the footers
        # now open: known without asking
        assert entry(client, "far")["shape"] == opened["shape"]
    finally:
        server.close()


def test_neuron_explainer_datasets_have_no_index(client):
    got = entry(client, "gpt2-small", "attn_write_norm", open="true")
    assert got["shape"] is None and "no index" in got["shapeNote"]


def test_schema_is_the_vocabulary(client):
    schema = client.get("/schema").json()
    assert [h["hook"] for h in schema["hooks"]] == list(GLU_HOOKS)
    assert [q["name"] for q in schema["quadrants"]] == list(QUADRANTS)
    post = next(h for h in schema["hooks"] if h["hook"] == "hook_post")
    assert post["dst"] == "mlp_post_act" and post["flipsWithRefactor"] is True
    assert "mlp_autoencoder_latent" in schema["derivedScalarTypes"]


def test_schema_and_file_metadata_are_typed_in_the_openapi(client, tiny_dataset):
    """The viewer's /schema and a record's fileMetadata are documented field by field."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    hook = schemas["HookDescription"]["properties"]
    assert {"hook", "dst", "label", "cardPosition", "maxGateSigns"} <= set(hook)
    assert {"name", "gateSign", "inSign", "short"} <= set(
        schemas["QuadrantDescription"]["properties"]
    )
    file_fields = schemas["CollationMetadata"]["properties"]
    assert {"corpus", "nDocuments", "topK", "bosToken", "partial"} <= set(file_fields)
    record = client.get("/neuron_record/tiny-llama/mlp_post_act/0/1").json()
    assert record["fileMetadata"]["topK"] == 4 and "partial" not in record["fileMetadata"]


def test_file_metadata_of_another_writer_is_kept_where_it_types():
    from activations.records.file_metadata import read_file_metadata

    read = read_file_metadata({"top_k": "many", "corpus": "c.jsonl", "theirs": 1})
    assert read.top_k is None and read.corpus == "c.jsonl"
    assert read.model_dump() == {"corpus": "c.jsonl", "theirs": 1}
    assert read.says("corpus") and not read.says("bos_token")
