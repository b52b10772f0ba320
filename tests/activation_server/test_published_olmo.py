"""`GET /neuron_record/olmo-7b/{dst}/{layer}/{neuron}` over the published dataset as it is on the
Hub: olmo-7b's entries pointed at replicas served by a local Hub (tests/hub.py), on both row-group
layouts; a dead, hung, refusing or rate-limiting Hub answered 502/504 in time, naming it."""

from __future__ import annotations

import math
import threading
import time

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from registry.vocabulary import DST_TO_HOOK
from tests.activation_server.conftest import register_tiny
from tests.activation_server.test_concurrency import call
from tests.replica import expected_row
from tests.servers import LiveServer

NEURONS = 1100
TIMEOUT_S = 2.0
SETTINGS = ServerSettings(upstream_timeout_s=TIMEOUT_S)


def point_olmo_at(layout: str, revision: str | None = None) -> None:
    """olmo-7b's four entries, as registered, but on a replica of the local Hub."""
    for metadata in registry.get_all_neuron_dataset_metadata():
        if metadata.short_name == "olmo-7b":
            registry.register_neuron_dataset_metadata(
                "olmo-7b",
                metadata.derived_scalar_type,
                metadata.user_visible_name,
                f"hf://datasets/sjgerstner/replica-{layout}",
                format=metadata.format,
                model=metadata.model,
                corpus=metadata.corpus,
                revision=revision,
                replace=True,
            )


@pytest.fixture
def server(olmo_hub, tiny_dataset):
    register_tiny(tiny_dataset)  # a local dataset beside the remote one
    with LiveServer(create_app(SETTINGS), SETTINGS) as live:
        yield live


def assert_record_is_the_row(body: dict, row: dict, hook: str) -> None:
    assert body["hook"] == hook
    for quadrant in body["quadrants"]:
        q = quadrant["name"]
        assert quadrant["freq"] == pytest.approx(row[f"{q}_freq"], rel=1e-6)
        for h, mean in quadrant["means"].items():
            assert mean == pytest.approx(row[f"{q}_{h}_mean"], rel=1e-6)
        if f"{q}_{hook}_max_values" not in row:  # no top examples (swish of gate+ quadrants)
            assert quadrant["examples"] == {}
            continue
        listed = zip(row[f"{q}_{hook}_max_values"], row[f"{q}_{hook}_max_indices"], strict=True)
        want = [(v, d) for v, d in listed if v != 0.0]  # a slot of value 0.0 holds no example
        got = [(e["value"], e["documentIndex"]) for e in quadrant["examples"][hook]]
        assert [d for _, d in got] == [d for _, d in want]
        pairs = zip(got, want, strict=True)
        assert all(math.isclose(g, w, rel_tol=1e-6) for (g, _), (w, _) in pairs)


@pytest.mark.parametrize("layout", ["large", "small"])
def test_every_dst_answers_the_replica_row(server, olmo_replicas, layout):
    point_olmo_at(layout)
    _, columns = olmo_replicas[layout]
    for dst, hook in DST_TO_HOOK.items():
        for layer, neuron in [(3, 1024), (0, 0), (2, NEURONS - 1)]:
            status, body = call(server.url, "GET", f"/neuron_record/olmo-7b/{dst}/{layer}/{neuron}")
            assert status == 200, body
            row = expected_row(columns, layer, neuron, NEURONS)
            assert_record_is_the_row(body, row, hook)
            assert sum(len(q["examples"].get(hook, [])) for q in body["quadrants"]) > 0
    # empty slots (value 0.0, a real index) are never shown: every 7th neuron has 8 of them
    status, body = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/0/7")
    assert status == 200 and all(len(q["examples"]["hook_post"]) == 8 for q in body["quadrants"])
    # out of range: 404 with the valid ranges
    status, body = call(server.url, "GET", f"/neuron_record/olmo-7b/mlp_post_act/0/{NEURONS}")
    assert status == 404 and "0-1099" in body["detail"]


def test_a_pinned_revision_is_asked_for(server, olmo_hub):
    point_olmo_at("large", revision="v1")
    status, body = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/3/1024")
    assert status == 200 and body["dataset"]["revision"] == "v1"
    reads = [entry[1] for entry in olmo_hub.log if "/resolve/" in entry[1]]
    assert reads and all("/resolve/v1/" in path for path in reads)


def timed(server, path: str) -> tuple[int, str, float]:
    began = time.monotonic()
    status, body = call(server.url, "GET", path)
    return status, body.get("detail", body), time.monotonic() - began


def test_a_dead_hub_is_502_at_once_and_local_records_go_on(server, olmo_hub):
    point_olmo_at("large")
    olmo_hub.stop()
    status, detail, seconds = timed(server, "/neuron_record/olmo-7b/mlp_post_act/3/1024")
    assert status == 502 and "Hugging Face Hub" in detail and "could not be reached" in detail
    assert seconds < TIMEOUT_S + 1.0  # not the hub client's half a minute of retries
    status, _ = call(server.url, "GET", "/neuron_record/tiny-llama/mlp_post_act/0/3")
    assert status == 200


def test_a_hub_gone_after_opening_is_502_for_a_cold_neuron(server, olmo_hub):
    point_olmo_at("large")
    status, _ = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/0/1")  # opens
    assert status == 200
    olmo_hub.stop()
    status, detail, seconds = timed(server, "/neuron_record/olmo-7b/mlp_post_act/3/1024")
    assert status == 502 and "Hugging Face Hub" in detail and seconds < TIMEOUT_S + 1.0
    status, _ = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/0/2")  # fetched
    assert status == 200


@pytest.mark.parametrize("opened", [False, True])
def test_a_hung_hub_is_504_within_the_timeout_and_local_records_go_on(server, olmo_hub, opened):
    point_olmo_at("large")
    if opened:
        assert call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/0/1")[0] == 200
    olmo_hub.fault = lambda method, path: 30.0  # every answer 30 s late
    results = []
    hung = threading.Thread(
        target=lambda: results.append(timed(server, "/neuron_record/olmo-7b/mlp_pre_act/3/1024"))
    )
    hung.start()
    time.sleep(0.2)
    status, _ = call(server.url, "GET", "/neuron_record/tiny-llama/mlp_post_act/0/3")
    assert status == 200 and results == []  # answered while the Hub hangs
    hung.join(30)
    ((status, detail, seconds),) = results
    assert status == 504 and "Hugging Face Hub" in detail and f"within {TIMEOUT_S:g} s" in detail
    assert seconds < TIMEOUT_S + 1.5


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (401, "answered 401 (unauthorized"),
        (403, "answered 403 (forbidden"),
        (429, "answered 429"),
        ((404, {"X-Error-Code": "RepoNotFound"}), "answered 404 (repository not found"),
    ],
)
def test_hub_answers_are_502_naming_them(server, olmo_hub, fault, said):
    point_olmo_at("small")
    olmo_hub.fault = lambda method, path: fault
    status, detail, seconds = timed(server, "/neuron_record/olmo-7b/mlp_post_act/1/2")
    assert status == 502 and "Hugging Face Hub" in detail and said in detail, detail
    assert seconds < TIMEOUT_S + 1.0
