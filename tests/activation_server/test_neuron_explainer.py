"""neuron-explainer's own viewer against this server: its exact request bodies (as its TypeScript
client builds them, neuron_viewer/src/requests/readRequests.ts) and its server's response models
(neuron_explainer/activation_server/read_routes.py), written here from its pydantic classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictStr
from pydantic.alias_generators import to_camel

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.compare import same
from tests.servers import LOCAL, RangeServer

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tdb" / "collated-activations"


# -- neuron-explainer's response models (read_routes.py, tokens.py), as its pydantic classes ------


class _Real(BaseModel):
    # CamelCaseBaseModel: camelCase aliases; pydantic's default ignores unknown fields
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True)


class RealTokenAndScalar(_Real):
    token: StrictStr
    scalar: StrictFloat
    normalized_scalar: StrictFloat


class RealNeuronRecordResponse(_Real):
    dataset: StrictStr
    max_activation: StrictFloat
    top_activations: list[list[RealTokenAndScalar]]
    random_sample: list[list[RealTokenAndScalar]]


class RealTokenAndAttentionScalars(_Real):
    token: StrictStr
    scalars: list[StrictFloat]
    normalized_scalars: list[StrictFloat]
    total_scalar_in: StrictFloat
    normalized_total_scalar_in: StrictFloat
    max_scalar_in: StrictFloat
    normalized_max_scalar_in: StrictFloat
    total_scalar_out: StrictFloat
    normalized_total_scalar_out: StrictFloat
    max_scalar_out: StrictFloat
    normalized_max_scalar_out: StrictFloat


class RealAttentionHeadRecordResponse(_Real):
    dataset: StrictStr
    max_attention_activation: StrictFloat
    most_positive_token_sequences: list[list[RealTokenAndAttentionScalars]]
    random_token_sequences: list[list[RealTokenAndAttentionScalars]]


class RealNeuronDatasetMetadata(_Real):
    short_name: StrictStr
    derived_scalar_type: StrictStr
    user_visible_name: StrictStr
    neuron_dataset_path: StrictStr


def node(dst: str, layer: int, index: int, datasets: list[str]) -> dict:
    """getNodeIdAndDatasets: the body of every record read."""
    return {"dst": dst, "layerIndex": layer, "activationIndex": index, "datasets": datasets}


def expected_sequences(record: dict) -> tuple[list, list]:
    """read_routes.normalize_token_scalars, independently: one scale over top and random."""
    groups = [record["most_positive_activation_records"], record["random_sample"]]
    top_value = max([0.0] + [max(a, 0) for g in groups for r in g for a in r["activations"]])

    def scaled(x: float) -> float:
        return max((x - 0) / (top_value - 1e-5), 0) if top_value > 0 else 0.0

    def tokens(r: dict) -> list[dict]:
        pairs = zip(r["tokens"], r["activations"], strict=True)
        return [{"token": t, "scalar": a, "normalizedScalar": scaled(a)} for t, a in pairs]

    return tuple([tokens(r) for r in group] for group in groups)


@pytest.fixture
def client(tiny_dataset):
    register_tiny(tiny_dataset)
    registry.register_neuron_dataset_metadata(
        "tdb-fixture", "mlp_post_act", "TDB fixture", str(FIXTURES)
    )
    with TestClient(create_app(ServerSettings(max_tokens_per_request=40)), base_url=LOCAL) as c:
        yield c


@pytest.mark.parametrize(("layer", "index"), [(0, 1), (5, 42)])
def test_neuron_record_of_a_neuron_explainer_dataset(client, layer, index):
    response = client.post(
        "/neuron_record", json=node("mlp_post_act", layer, index, ["tdb-fixture"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    real = RealNeuronRecordResponse.model_validate(body)  # the real server's model, strictly
    assert set(body) == {"dataset", "maxActivation", "topActivations", "randomSample", "note"}
    record = json.loads((FIXTURES / str(layer) / f"{index}.json").read_text())
    top, random = expected_sequences(record)
    assert same(body["topActivations"], top, rel=1e-12) and same(
        body["randomSample"], random, 1e-12
    )
    top_records = record["most_positive_activation_records"]
    assert real.max_activation == max(a for r in top_records for a in r["activations"])
    assert body["dataset"] == "tdb-fixture"  # a local dataset is named, not located


def test_a_registered_url_names_the_dataset_and_is_the_answers_dataset(client):
    files = {f"/c/{p.parent.name}/{p.name}": p.read_bytes() for p in FIXTURES.rglob("*.json")}
    upstream = RangeServer(files)
    try:
        url = upstream.url("/c")
        registry.register_neuron_dataset_metadata("tdb-remote", "mlp_post_act", "Remote", url)
        by_path = client.post("/neuron_record", json=node("mlp_post_act", 5, 42, [url + "/"]))
        assert by_path.status_code == 200, by_path.text
        assert by_path.json()["dataset"] == url  # as neuron-explainer answers: the URL
    finally:
        upstream.close()


def test_datasets_are_tried_in_order_and_unknown_names_are_errors(client):
    # the first has no layer 5, the second has it
    both = client.post(
        "/neuron_record", json=node("mlp_post_act", 5, 42, ["tiny-llama", "tdb-fixture"])
    )
    assert both.status_code == 200 and both.json()["dataset"] == "tdb-fixture"
    neither = client.post("/neuron_record", json=node("mlp_post_act", 0, 2, ["tdb-fixture"]))
    assert neither.status_code == 404
    assert "Could not find mlp_post_act 0:2 in: tdb-fixture" in neither.json()["detail"]
    for unknown in (["tiny-lama"], ["/etc/passwd"], ["tdb-fixture", "https://elsewhere/x"]):
        answer = client.post("/neuron_record", json=node("mlp_post_act", 0, 1, unknown))
        assert answer.status_code == 404, unknown
        assert "Available datasets are" in answer.json()["detail"]
        assert "root:" not in answer.text


def test_our_short_name_field_is_kept(client):
    body = {
        "dst": "mlp_post_act",
        "layerIndex": 5,
        "activationIndex": 42,
        "shortName": "tdb-fixture",
    }
    assert client.post("/neuron_record", json=body).json()["dataset"] == "tdb-fixture"


def test_an_empty_record_answers_empty(client, tmp_path):
    empty = {
        "dataclass_name": "NeuronRecord",
        "neuron_id": {"layer_index": 0, "neuron_index": 0},
        "random_sample": [],
        "most_positive_activation_records": [],
    }
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "0.json").write_text(json.dumps(empty))
    registry.register_neuron_dataset_metadata("empty", "mlp_post_act", "Empty", str(tmp_path))
    body = client.post("/neuron_record", json=node("mlp_post_act", 0, 0, ["empty"])).json()
    assert RealNeuronRecordResponse.model_validate(body).max_activation == 0.0
    assert body["topActivations"] == [] and body["randomSample"] == []


def test_a_glu_neuron_in_neuron_explainers_shape(client):
    answer = client.post("/neuron_record", json=node("mlp_post_act", 1, 7, ["tiny-llama"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    RealNeuronRecordResponse.model_validate(body)
    assert body["dataset"] == "tiny-llama" and body["note"] is None
    ours = client.get("/neuron_record/tiny-llama/mlp_post_act/1/7?context=32&activations=true")
    examples = [e for q in ours.json()["quadrants"] for e in q["examples"]["hook_post"]]
    examples.sort(key=lambda e: -abs(e["value"]))
    top = body["topActivations"]
    assert [[t["token"] for t in seq] for seq in top] == [e["tokens"] for e in examples]
    for sequence, example in zip(top, examples, strict=True):
        assert same([t["scalar"] for t in sequence], example["activations"]["hook_post"])
    assert len(body["randomSample"]) == 5 and all(body["randomSample"])
    every = [t for group in (top, body["randomSample"]) for seq in group for t in seq]
    top_value = max(t["scalar"] for t in every)
    for t in every:
        assert same(t["normalizedScalar"], max(t["scalar"] / (top_value - 1e-5), 0))
    assert same(body["maxActivation"], max(t["scalar"] for seq in top for t in seq))


def test_a_glu_dataset_without_corpus_or_model_says_so(client, tiny_dataset, tmp_path):
    registry.register_neuron_dataset_metadata(
        "bare", "mlp_post_act", "Bare", str(tiny_dataset["parquet"]), format="glu_parquet"
    )
    body = client.post("/neuron_record", json=node("mlp_post_act", 0, 3, ["bare"])).json()
    RealNeuronRecordResponse.model_validate(body)
    assert body["topActivations"] == [] and "names no corpus and model" in body["note"]
    registry.register_model("ghost", "no-such-org/no-such-model", user_visible_name="Ghost")
    registry.register_neuron_dataset_metadata(
        "ghostly", "mlp_post_act", "G", str(tiny_dataset["parquet"]), format="glu_parquet",
        model="ghost", corpus=str(tiny_dataset["corpus"]),
    )  # fmt: skip
    answer = client.post("/neuron_record", json=node("mlp_post_act", 0, 3, ["ghostly"]))
    note = answer.json()["note"]
    assert answer.status_code == 200 and "the tokenizer of model 'ghost' is not available" in note


def test_attention_head_records_by_token_pair(client, tmp_path):
    tokens = ["a", "b", "c", "d"]
    # a causal window of 2 over 4 tokens: 1 + 2 + 2 + 2 values
    values = [0.5, -1.0, 2.0, 0.25, 3.0, 1.5, -0.5]
    record = {
        "dataclass_name": "NeuronRecord",
        "neuron_id": {"layer_index": 3, "neuron_index": 7},
        "random_sample": [{"tokens": tokens[:2], "activations": [1.0, 0.0, 4.0]}],
        "most_positive_activation_records": [{"tokens": tokens, "activations": values}],
    }
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "7.json").write_text(json.dumps(record))
    registry.register_neuron_dataset_metadata("heads", "attn_write_norm", "Heads", str(tmp_path))
    answer = client.post("/attention_head_record", json=node("attn_write_norm", 3, 7, ["heads"]))
    assert answer.status_code == 200, answer.text
    real = RealAttentionHeadRecordResponse.model_validate(answer.json())
    first = real.most_positive_token_sequences[0]
    assert [t.scalars for t in first] == [[0.5], [-1.0, 2.0], [0.25, 3.0], [1.5, -0.5]]
    assert [t.max_scalar_in for t in first] == [0.5, 2.0, 3.0, 1.5]
    assert [t.total_scalar_out for t in first] == [0.5 - 1.0 + 0.25 + 1.5, 2.0 + 3.0 - 0.5, 0, 0]
    pair_top = 4.0  # the largest pair value, top and random together
    assert first[2].normalized_scalars[1] == pytest.approx(3.0 / (pair_top - 1e-5))
    assert real.max_attention_activation == 3.0
    # a per-token dataset is not read as pairs, and the other way round
    wrong = client.post("/attention_head_record", json=node("mlp_post_act", 5, 42, ["tdb-fixture"]))
    assert wrong.status_code == 404 and "POST /neuron_record reads it" in wrong.json()["detail"]


def test_the_welcome_pages_dataset_list(client):
    answer = client.post("/neuron_datasets_metadata")
    assert answer.status_code == 200
    listed = [RealNeuronDatasetMetadata.model_validate(d) for d in answer.json()]
    known = {
        "autoencoder_latent",
        "mlp_autoencoder_latent",
        "attention_autoencoder_latent",
        "mlp_post_act",
        "attn_write_norm",
        "flattened_attn_write_to_latent_summed_over_heads",
    }
    assert {d.derived_scalar_type for d in listed} <= known  # its dstStringToNodeType
    names = {(d.short_name, d.derived_scalar_type) for d in listed}
    assert ("gpt2-small", "attn_write_norm") in names and ("smollm2-135m", "mlp_post_act") in names
    assert ("smollm2-135m", "mlp_pre_act") not in names
    assert all(not d.neuron_dataset_path.startswith("/") for d in listed)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:1234", True),  # neuron-explainer's viewer (parcel) by default
        ("http://127.0.0.1:5173", True),
        ("https://localhost", True),
        ("http://evil.example", False),
        ("http://localhost.evil.example:1234", False),
    ],
)
def test_pages_of_this_machine_may_call_the_api(client, origin, allowed):
    preflight = client.options(
        "/neuron_record",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert (preflight.headers.get("access-control-allow-origin") == origin) is allowed
    post = client.post(
        "/neuron_record",
        json=node("mlp_post_act", 5, 42, ["tdb-fixture"]),
        headers={"Origin": origin},
    )
    assert (post.headers.get("access-control-allow-origin") == origin) is allowed


def test_cors_origin_adds_others(tiny_dataset):
    settings = ServerSettings(cors_origins=["http://lab.example"])
    with TestClient(create_app(settings), base_url=LOCAL) as c:
        assert (
            c.get("/health", headers={"Origin": "http://lab.example"}).headers[
                "access-control-allow-origin"
            ]
            == "http://lab.example"
        )
        assert (
            "access-control-allow-origin"
            not in c.get("/health", headers={"Origin": "http://evil.example"}).headers
        )


def test_the_real_clients_numbers_are_finite(client):
    body = client.post("/neuron_record", json=node("mlp_post_act", 1, 5, ["tiny-llama"])).json()
    for group in ("topActivations", "randomSample"):
        for sequence in body[group]:
            assert all(
                math.isfinite(t["scalar"]) and math.isfinite(t["normalizedScalar"])
                for t in sequence
            )


@pytest.mark.parametrize(
    ("dst", "name", "hint"),
    [
        ("autoencoder_latent", "gpt2-small_undefined", "specify the autoencoder name"),
        ("attention_autoencoder_latent", "gpt2-small_undefined", "attention autoencoder name"),
        ("resid_post_mlp", "gpt2-small", '"gpt2-small" has datasets for'),
    ],
)
def test_every_type_its_viewer_sends_is_understood(client, dst, name, hint):
    """getDerivedScalarType's values for record reads: known types, answered 404 where no
    dataset has them (with the seed registry's hint), never a validation error."""
    answer = client.post("/neuron_record", json=node(dst, 0, 0, [name]))
    assert answer.status_code == 404 and hint in answer.json()["detail"]
