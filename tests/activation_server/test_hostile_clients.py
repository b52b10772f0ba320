"""What careless and hostile requests get: the status of what went wrong (never a 500) with its
reason, without reading anything that cannot answer them."""

from __future__ import annotations

import registry
from tests.servers import HangingServer


def register(short_name: str, path: str) -> None:
    registry.register_neuron_dataset_metadata(
        short_name, "mlp_post_act", short_name, path, format="glu_parquet", model="tiny-llama"
    )


def test_token_search_on_a_remote_dataset_is_422_before_any_read(client):
    upstream = HangingServer()
    try:
        register("hung", upstream.url + "/x.parquet")
        answer = client.get("/search/token/hung/mlp_post_act", params={"token": "w1"})
        assert answer.status_code == 422
        assert "token search reads local files; hung is remote" in answer.json()["detail"]
        assert upstream.accepted == []  # nothing was asked of the upstream
    finally:
        upstream.close()


def test_token_search_on_a_missing_or_corrupt_file_is_404_or_502(client, tmp_path):
    register("gone", str(tmp_path / "gone.parquet"))
    answer = client.get("/search/token/gone/mlp_post_act", params={"token": "w1"})
    assert answer.status_code == 404 and "does not exist" in answer.json()["detail"]
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet" * 100)
    register("junk", str(junk))
    answer = client.get("/search/token/junk/mlp_post_act", params={"token": "w1"})
    assert answer.status_code == 502 and "not a readable Parquet file" in answer.json()["detail"]
    # the records of the same files answer alike
    assert client.get("/neuron_record/gone/mlp_post_act/0/0").status_code == 404
    assert client.get("/neuron_record/junk/mlp_post_act/0/0").status_code == 502
