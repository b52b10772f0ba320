"""Hostile and broken clients and sources over real HTTP: every limit holds against any client,
and every failure is a clear answer (never a 500, never a hang)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.servers import LiveServer, RangeServer

SETTINGS = ServerSettings(
    max_tokens_per_request=40,
    upstream_timeout_s=2.0,
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    max_body_bytes=100_000,
)


@pytest.fixture
def server(tiny_dataset):
    register_tiny(tiny_dataset)
    with LiveServer(create_app(SETTINGS), SETTINGS) as live:
        yield live


def raw(server, data: bytes, wait_s: float = 10.0) -> bytes:
    """Send bytes on a new connection; everything the server says until it closes (or wait_s)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=wait_s)
    try:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer
    finally:
        sock.close()


def get(server, path: str, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def post(server, path: str, body) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_a_chunked_body_over_the_limit_is_413_without_reading_it_all(server):
    chunk = b"x" * 65536
    head = b"POST /activations HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += b"Content-Type: application/json\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sent = 0
    try:
        sock.sendall(head)
        with pytest.raises(OSError):  # the server answers and closes long before 200 MB
            while sent < 200 * 2**20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        answer = sock.recv(65536)
    except OSError:
        answer = b""
    finally:
        sock.close()
    assert sent < 10 * 2**20
    if answer:  # the answer can be lost in the reset; when it arrives it says why
        assert b" 413 " in answer.split(b"\r\n")[0] and b"over the limit of 100000" in answer


def test_slow_headers_are_cut_off(server):
    # never finished: the server closes the connection (raw's own 10 s wait would raise)
    answer = raw(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert answer == b""
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:  # a connection that sends nothing at all
        assert silent.recv(10) == b""
    finally:
        silent.close()


def test_a_body_that_stops_coming_is_408(server):
    head = b"POST /activations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n"
    answer = raw(server, head + b'Content-Type: application/json\r\n\r\n{"model": ')
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1 s" in answer


def test_only_the_servers_own_hosts_are_answered(server):
    status, body = get(server, "/health", {"Host": "evil.example"})
    assert status == 400 and "host 'evil.example' is not served here" in body["detail"]
    assert get(server, "/health", {"Host": f"localhost:{server.port}"})[0] == 200
    assert get(server, "/health", {"Host": f"127.0.0.1:{server.port}"})[0] == 200


def test_an_unexpected_error_is_500_and_the_connection_stays(server, monkeypatch):
    from activations.sources import glu_source

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(glu_source.GluDatasetSource, "_summary", broken)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for _ in range(2):  # the same connection, twice
        conn.request("GET", "/neuron_record/tiny-llama/mlp_post_act/0/0")
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 500 and "secret" not in body["detail"]
        assert response.getheader("connection") != "close"
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200


@pytest.mark.parametrize("bad", ["1.0", "+1", "%201", "1_0", "0x1", "%EF%BC%91"])
def test_integers_in_paths_and_queries_are_digits_only(server, bad):
    status, body = get(server, f"/neuron_record/tiny-llama/mlp_post_act/{bad}/0")
    assert status == 422 and "digits 0-9 only" in json.dumps(body)
    status, _ = get(server, f"/neuron_record/tiny-llama/mlp_post_act/0/0?context={bad}")
    assert status == 422


@pytest.mark.parametrize("value", [True, 1.0, "1", [1]])
def test_integers_in_bodies_are_json_integers(server, value):
    status, body = post(
        server, "/activations", {"model": "tiny-llama", "text": "w1", "layer": value}
    )
    assert status == 422 and body["detail"][0]["loc"][-1] == "layer"
    status, _ = post(
        server,
        "/neuron_record",
        {
            "dst": "mlp_post_act",
            "layerIndex": value,
            "activationIndex": 0,
            "shortName": "tiny-llama",
        },
    )
    assert status == 422


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": ""}, "text 0 is empty"),
        ({"texts": ["", ""]}, "text 0 is empty"),
        ({"texts": ["w1", ""]}, "text 1 is empty"),
    ],
)
def test_empty_texts_are_422(server, body, message):
    status, answer = post(server, "/activations", {"model": "tiny-llama", "layer": 0, **body})
    assert status == 422 and message in json.dumps(answer)


def test_a_lone_surrogate_is_422(server):
    data = b'{"model": "tiny-llama", "layer": 0, "text": "\\ud800x"}'
    status, answer = post(server, "/activations", data)
    assert status == 422 and "not valid Unicode at character 0" in json.dumps(answer)


def test_a_model_that_cannot_load_is_502_and_the_failure_is_remembered(server):
    registry.register_model("ghost", "no-such-org/no-such-model", user_visible_name="Ghost")
    request = {"model": "ghost", "text": "hello", "layer": 0}
    status, first = post(server, "/activations", request)
    assert status == 502 and "model 'ghost' could not be loaded" in first["detail"]
    status, again = post(server, "/activations", request)
    # answered from memory, not by a second attempt: it says when it will be tried again
    assert status == 502 and "tried again in" in again["detail"]


def test_a_server_without_range_requests_is_502(server, tiny_dataset, tmp_path):
    import pyarrow.parquet as pq

    big = tmp_path / "big.parquet"  # over the first read's 64 kB: a whole-file answer is refused
    pq.write_table(pq.read_table(tiny_dataset["parquet"]), big, compression="none")
    assert big.stat().st_size > 64 * 1024
    no_ranges = RangeServer({"/x.parquet": big.read_bytes()}, ranges=False)
    try:
        registry.register_neuron_dataset_metadata(
            "noranges", "mlp_post_act", "N", no_ranges.url("/x.parquet"), format="glu_parquet"
        )
        status, body = get(server, "/neuron_record/noranges/mlp_post_act/0/0")
        assert status == 502 and no_ranges.url("/x.parquet") in body["detail"]
        assert "does not answer byte ranges" in body["detail"]
    finally:
        no_ranges.close()


def test_a_file_replaced_under_the_server_is_read_anew(server, tiny_dataset, tmp_path):
    path = tmp_path / "swap.parquet"
    shutil.copy(tiny_dataset["parquet"], path)
    registry.register_neuron_dataset_metadata(
        "swap", "mlp_post_act", "S", str(path), format="glu_parquet"
    )
    status, before = get(server, "/neuron_record/swap/mlp_post_act/0/3")
    assert status == 200
    # os.replace (as --overwrite does) with a file of other values
    table = pq.read_table(path)
    freq = table.column("gate+_in+_freq").to_pylist()
    column = table.schema.get_field_index("gate+_in+_freq")
    more = pa.array([f + 1.0 for f in freq], type=pa.float32())
    changed = table.set_column(column, "gate+_in+_freq", more)
    staged = tmp_path / "staged.parquet"
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), staged)
    os.replace(staged, path)
    status, after = get(server, "/neuron_record/swap/mlp_post_act/0/3")
    assert status == 200
    assert after["quadrants"][0]["freq"] == pytest.approx(before["quadrants"][0]["freq"] + 1)
    # an in-place copy (same file, new content) is seen too
    shutil.copyfile(tiny_dataset["parquet"], path)
    status, back = get(server, "/neuron_record/swap/mlp_post_act/0/3")
    assert status == 200 and back["quadrants"][0]["freq"] == before["quadrants"][0]["freq"]
