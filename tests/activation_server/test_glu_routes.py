"""Neuron records of GLU Parquet datasets, catalog routes and live activations, through HTTP."""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest

from activations.records.schema import QUADRANTS


def test_record_matches_the_file(client, tiny_dataset):
    response = client.get("/neuron_record/tiny-llama/mlp_post_act/1/5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["layer"], body["neuron"], body["hook"]) == (1, 5, "hook_post")
    row = pq.read_table(tiny_dataset["parquet"]).to_pylist()[24 + 5]
    assert [q["name"] for q in body["quadrants"]] == list(QUADRANTS)
    for quadrant in body["quadrants"]:
        q = quadrant["name"]
        assert quadrant["freq"] == pytest.approx(row[f"{q}_freq"])
        mean = row[f"{q}_hook_pre_mean"]
        got = quadrant["means"]["hook_pre"]
        assert (got is None and math.isnan(mean)) or got == pytest.approx(mean)
        assert list(quadrant["examples"]) == ["hook_post"]
        docs = [e["documentIndex"] for e in quadrant["examples"]["hook_post"]]
        assert docs == [d for d in row[f"{q}_hook_post_max_indices"] if d >= 0]
    assert body["fileMetadata"]["model"] == "tiny-llama"


def test_dst_selects_the_hook_and_all_gives_every_hook(client):
    body = client.get("/neuron_record/tiny-llama/mlp_pre_act/0/3").json()
    assert body["hook"] == "hook_pre"
    assert set(body["quadrants"][0]["examples"]) == {"hook_pre"}
    every = client.get("/neuron_record/tiny-llama/mlp_pre_act/0/3?hooks=all").json()
    assert set(every["quadrants"][2]["examples"]) == {
        "hook_pre",
        "hook_pre_linear",
        "swish",
        "hook_post",
    }


def test_context_and_activations_show_the_max_token(client):
    body = client.get("/neuron_record/tiny-llama/mlp_post_act/1/7?context=3&activations=true")
    assert body.status_code == 200, body.text
    examples = [e for q in body.json()["quadrants"] for e in q["examples"]["hook_post"]]
    assert examples
    for example in examples:
        at = example["position"] - example["windowStart"]
        assert 0 <= at < len(example["tokens"]) <= 7
        values = example["activations"]["hook_post"]
        assert len(values) == len(example["tokens"])
        # the recomputed value at the max position is the recorded one
        assert values[at] == pytest.approx(example["value"], abs=1e-4)


def test_unknown_dataset_is_404_with_the_registry_message(client):
    response = client.get("/neuron_record/tiny-lama/mlp_post_act/0/0")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert 'Did you mean: "tiny-llama"' in detail and "Available datasets are" in detail
    bad_type = client.get("/neuron_record/tiny-llama/mlp_post/0/0")
    assert bad_type.status_code == 404
    assert "valid types are" in bad_type.json()["detail"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/neuron_record/tiny-llama/mlp_post_act/2/0", "valid layers are 0-1"),
        ("/neuron_record/tiny-llama/mlp_post_act/0/24", "valid neurons are 0-23"),
    ],
)
def test_out_of_range_is_404_with_valid_ranges(client, path, message):
    response = client.get(path)
    assert response.status_code == 404
    assert message in response.json()["detail"]


@pytest.mark.parametrize("path", ["/neuron_record/tiny-llama/mlp_post_act/x/0",
                                  "/neuron_record/tiny-llama/mlp_post_act/0/-1",
                                  "/neuron_record/tiny-llama/mlp_post_act/0/1.5"])  # fmt: skip
def test_non_integer_or_negative_is_422(client, path):
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_missing_dataset_file_says_how_to_build_it(client, tmp_path):
    import registry

    registry.register_neuron_dataset_metadata(
        "ghost", "mlp_post_act", "Ghost", str(tmp_path / "none.parquet"),
        format="glu_parquet", model="tiny-llama",
    )  # fmt: skip
    response = client.get("/neuron_record/ghost/mlp_post_act/0/0")
    assert response.status_code == 404
    assert "neurons collate --model tiny-llama" in response.json()["detail"]


def test_post_neuron_record_accepts_neuron_explainer_body(client):
    response = client.post(
        "/neuron_record",
        json={
            "dst": "mlp_post_act",
            "layerIndex": 1,
            "activationIndex": 5,
            "shortName": "tiny-llama",
        },
    )
    assert response.status_code == 200, response.text
    body = (
        response.json()
    )  # neuron-explainer's shape (tests/activation_server/test_neuron_explainer.py)
    assert body["dataset"] == "tiny-llama" and body["topActivations"]
    ambiguous = client.post(
        "/neuron_record", json={"dst": "mlp_post_act", "layerIndex": 0, "activationIndex": 0}
    )
    assert ambiguous.status_code == 404
    assert 'give "datasets"' in ambiguous.json()["detail"]


def test_catalog_routes(client):
    datasets = client.get("/datasets", params={"model": "tiny-llama"}).json()
    assert {d["derivedScalarType"] for d in datasets} == {"mlp_post_act", "mlp_pre_act"}
    by_type = client.get("/datasets", params={"dst": "attn_write_norm"}).json()
    assert [d["shortName"] for d in by_type] == ["gpt2-small"]
    assert "tiny-llama" in {m["shortName"] for m in client.get("/models").json()}
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/datasets", params={"dst": "nope"}).status_code == 422
    assert (
        "/neuron_record/{short_name}/{dst}/{layer}/{neuron}"
        in client.get("/openapi.json").json()["paths"]
    )


def test_live_activations_match_the_record(client):
    response = client.post(
        "/activations",
        json={"model": "tiny-llama", "text": "w1 w2 w3 w4", "layer": 1, "neurons": [5, 7]},
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["tokens"][0] == "[BOS]" and len(result["tokens"]) == 5
    assert [n["neuron"] for n in result["neurons"]] == [5, 7]
    for trace in result["neurons"]:
        assert len(trace["values"]) == 5
        assert set(trace["quadrants"]) <= set(QUADRANTS) | {None}


def test_live_top_k_and_several_texts(client):
    response = client.post(
        "/activations",
        json={
            "model": "tiny-llama",
            "texts": ["w1 w2", "w3"],
            "layer": 0,
            "topK": 3,
            "dst": "mlp_pre_act",
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [len(r["tokens"]) for r in results] == [3, 2]
    values = results[0]["neurons"]
    assert len(values) == 3
    strengths = [max(abs(v) for v in n["values"]) for n in values]
    assert strengths == sorted(strengths, reverse=True)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "nope", "text": "w1", "layer": 0}, 404, "Available models"),
        ({"model": "tiny-llama", "text": "w1", "layer": 9}, 404, "valid layers are 0-1"),
        ({"model": "tiny-llama", "text": "w1", "layer": 0, "neurons": [99]}, 404, "are 0-23"),
        ({"model": "tiny-llama", "text": " ".join(["w1"] * 60), "layer": 0}, 413, "limit is 40"),
        ({"model": "tiny-llama", "layer": 0}, 422, "exactly one of"),
        ({"model": "tiny-llama", "text": "w1", "texts": ["w1"], "layer": 0}, 422, "exactly one of"),
        ({"model": "tiny-llama", "text": "w1", "layer": -1}, 422, "greater than or equal"),
    ],
)  # fmt: skip
def test_live_errors(client, body, status, message):
    response = client.post("/activations", json=body)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])


def test_malformed_and_oversized_bodies(client):
    bad = client.post(
        "/activations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422
    huge = client.post(
        "/activations", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    assert "limit" in huge.json()["detail"]


def test_refactored_dataset_shows_activations_with_the_recorded_signs(
    client, tiny_dataset, tmp_path
):
    import registry
    from activations.collate import CollateConfig, collate

    out = collate(
        CollateConfig(
            model="tiny-llama", out=str(tmp_path / "flipped.parquet"),
            corpus=str(tiny_dataset["corpus"]), top_k=4, batch_size=4, engine="eager",
            progress=False, refactor_glu=True,
        )
    )  # fmt: skip
    registry.register_neuron_dataset_metadata(
        "tiny-flipped", "mlp_post_act", "Flipped", str(out), format="glu_parquet",
        model="tiny-llama", corpus=str(tiny_dataset["corpus"]),
    )  # fmt: skip
    checked = 0
    for neuron in range(2, 24):
        body = client.get(
            f"/neuron_record/tiny-flipped/mlp_post_act/0/{neuron}?context=2&activations=true"
        ).json()
        for quadrant in body["quadrants"]:
            for example in quadrant["examples"]["hook_post"]:
                at = example["position"] - example["windowStart"]
                assert example["activations"]["hook_post"][at] == pytest.approx(
                    example["value"], abs=1e-4
                )
                checked += 1
    assert checked > 20


def test_example_values_keep_to_a_token_budget(tiny_dataset):
    """Past the budget, examples keep their text but go without values, and the answer says
    so; within it, every example has its values."""
    from fastapi.testclient import TestClient

    from activation_server.app import create_app
    from activation_server.settings import ServerSettings
    from tests.activation_server.conftest import register_tiny
    from tests.servers import LOCAL

    register_tiny(tiny_dataset)
    path = "/neuron_record/tiny-llama/mlp_post_act/1/7?context=3&activations=true&hooks=all"
    settings = ServerSettings(max_tokens_per_request=40, max_example_tokens=20)
    with TestClient(create_app(settings), base_url=LOCAL) as small:
        body = small.get(path).json()
    examples = [e for q in body["quadrants"] for ex in q["examples"].values() for e in ex]
    without = [e for e in examples if e["activations"] is None]
    assert without and all(e["tokens"] for e in examples)
    assert f"values of {len(without)} examples are left out" in body["contextNote"]
    assert "20-token budget" in body["contextNote"]
    with TestClient(create_app(ServerSettings(max_tokens_per_request=40)), base_url=LOCAL) as big:
        full = big.get(path).json()
    assert full["contextNote"] is None
    assert all(
        e["activations"] for q in full["quadrants"] for x in q["examples"].values() for e in x
    )
