"""Bad input and broken data: clear answers, safe defaults, nothing stored changed."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.servers import LOCAL


@pytest.mark.parametrize(
    "path",
    [
        "/neuron_record/..%2F..%2Fetc%2Fpasswd/mlp_post_act/0/0",
        "/neuron_record/../../etc/passwd/mlp_post_act/0/0",
        "/neuron_record/tiny-llama/..%2F..%2Fsecret/0/0",
        "/neuron_record/%2Fetc%2Fpasswd/mlp_post_act/0/0",
    ],
)
def test_path_traversal_matches_no_route(client, path):
    """Escaped slashes are slashes to the router: these paths are no route at all."""
    response = client.get(path)
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize("name", ["...etc..passwd", "~root", "tiny-llama%00"])
def test_names_are_registry_keys_never_paths(client, name):
    response = client.get(f"/neuron_record/{name}/mlp_post_act/0/0")
    assert response.status_code == 404
    assert "root:" not in response.text
    assert "Available datasets are" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/neuron_record/tiny-llama/mlp_post_act/99999999999999999999/0",
        "/neuron_record/tiny-llama/mlp_post_act/0/99999999999999999999",
        "/neuron_record/tiny-llama/mlp_post_act/-3/0",
        "/neuron_record/tiny-llama/mlp_post_act/0/abc",
    ],
)
def test_huge_negative_and_non_integer_indices_are_422(client, path):
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"]


def test_large_but_valid_integer_is_404_with_the_range(client):
    response = client.get("/neuron_record/tiny-llama/mlp_post_act/0/100000")
    assert response.status_code == 404
    assert "valid neurons are 0-23" in response.json()["detail"]


def test_texts_empty_non_utf8_and_too_many(client):
    empty = client.post("/activations", json={"model": "tiny-llama", "text": "", "layer": 0})
    assert empty.status_code == 422 and "text 0 is empty" in empty.text
    raw = b'{"model": "tiny-llama", "text": "\xff\xfe", "layer": 0}'
    bad = client.post("/activations", content=raw, headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["detail"]  # not decodable as UTF-8 JSON
    many = client.post(
        "/activations", json={"model": "tiny-llama", "texts": ["w1"] * 100, "layer": 0}
    )
    assert many.status_code == 413 and "limit is 16" in many.json()["detail"]
    huge = client.post(
        "/activations", json={"model": "tiny-llama", "text": "w1 " * 100_000, "layer": 0}
    )
    assert huge.status_code == 413 and "limit" in huge.json()["detail"]
    wrong_type = client.post("/activations", json={"model": "tiny-llama", "text": 5, "layer": 0})
    assert wrong_type.status_code == 422


def test_cors_is_off_unless_configured(tiny_dataset):
    from tests.activation_server.conftest import register_tiny

    register_tiny(tiny_dataset)
    origin = {"Origin": "http://evil.example"}
    with TestClient(create_app(), base_url=LOCAL) as closed:
        assert "access-control-allow-origin" not in closed.get("/health", headers=origin).headers
    settings = ServerSettings(cors_origins=["http://lab.example"])
    with TestClient(create_app(settings), base_url=LOCAL) as open_:
        allowed = open_.get("/health", headers={"Origin": "http://lab.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://lab.example"


def test_unexpected_errors_are_500_without_traceback(tiny_dataset, monkeypatch):
    from activations.sources import glu_source
    from tests.activation_server.conftest import register_tiny

    register_tiny(tiny_dataset)

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(glu_source.GluDatasetSource, "_summary", broken)
    with TestClient(
        create_app(), raise_server_exceptions=False, base_url="http://127.0.0.1"
    ) as test_client:
        response = test_client.get("/neuron_record/tiny-llama/mlp_post_act/0/0")
        assert response.status_code == 500
        assert "secret internals" not in response.text and "Traceback" not in response.text
        assert "internal error" in response.json()["detail"]
        assert test_client.get("/health").status_code == 200


@pytest.mark.parametrize("damage", ["truncate", "garble-footer", "empty"])
def test_corrupted_parquet_is_a_clear_502_naming_the_file(client, tiny_dataset, tmp_path, damage):
    data = tiny_dataset["parquet"].read_bytes()
    broken = tmp_path / f"{damage}.parquet"
    if damage == "truncate":
        broken.write_bytes(data[: len(data) // 2])
    elif damage == "garble-footer":
        broken.write_bytes(data[:-64] + b"\x00" * 60 + data[-4:])
    else:
        broken.write_bytes(b"")
    registry.register_neuron_dataset_metadata(
        f"broken-{damage}", "mlp_post_act", "Broken", str(broken), format="glu_parquet"
    )
    before = hashlib.sha256(broken.read_bytes()).hexdigest()
    response = client.get(f"/neuron_record/broken-{damage}/mlp_post_act/0/0")
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert f"…/{broken.name}" in detail and str(broken.parent) not in detail  # named, not located
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == before  # nothing written
    assert client.get("/neuron_record/tiny-llama/mlp_post_act/0/0").status_code == 200


def test_a_full_pool_is_503_with_when_to_ask_again():
    """Every 503 carries Retry-After; errors of the table keep their JSON detail."""
    from fastapi import FastAPI

    from activation_server.errors import install_error_handlers
    from activations.pools import PoolBusyError

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/full")
    def full():
        raise PoolBusyError("16 record reads wait already: try again in a moment")

    answer = TestClient(app).get("/full")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json() == {"detail": "16 record reads wait already: try again in a moment"}
