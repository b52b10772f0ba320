"""The OpenAI-compatible backend against a stand-in server speaking that protocol: chat for
explanations, completions with echo and logprobs for all-at-once simulation, chat for the
logprob-free simulator; a dead or hung server named in a 502 / 504 error."""

from __future__ import annotations

import asyncio
import math

import pytest

from activations.explanations.errors import BackendError, BackendTimeoutError
from activations.explanations.openai_backend import OpenAIBackend, parse_logprob_free
from activations.explanations.pipeline import Target, explain
from activations.records.tdb_json import ActivationRecord
from registry.explanations import ExplainerMetadata
from tests.openai_standin import StandinServer, _free_port

TOKENS = [" the", " king", " said", " no", " kings"]


@pytest.fixture(scope="module")
def server():
    with StandinServer() as running:
        yield running


def backend(base_url: str, **options) -> OpenAIBackend:
    return OpenAIBackend(
        ExplainerMetadata(short_name="s", kind="openai", model="m", base_url=base_url, **options)
    )


def test_echo_logprobs_simulation_reads_each_slot(server):
    (simulation,) = asyncio.run(backend(server.base_url).simulate("kings", [TOKENS]))
    fires = 9 * 0.8 / 0.9  # "9" and "0" renormalised, "unknown" left out
    assert simulation.expected_activations == pytest.approx([0, fires, 0, 0, fires])
    assert simulation.distribution_values[1] == [0.0, 9.0]
    assert simulation.distribution_probabilities[1] == pytest.approx([0.1 / 0.9, 0.8 / 0.9])
    request = server.state["completions"][-1]
    assert request["echo"] is True and request["logprobs"] == 15 and request["model"] == "m"
    assert "kings" in request["prompt"] and "\tunknown" in request["prompt"]


def test_the_logprob_free_simulator(server):
    (simulation,) = asyncio.run(
        backend(server.base_url, logprobs=False).simulate("kings", [TOKENS])
    )
    assert simulation.expected_activations == [0, 5, 0, 0, 5]
    assert simulation.distribution_values == []
    assert parse_logprob_free("a\t3༗\nb\t7༗\n", ["a", "b"]) == [3, 7]
    assert parse_logprob_free("a\t3༗\nc\t7༗\n", ["a", "b"]) == [0, 0]  # not repeated faithfully


def test_explain_and_score_through_a_server(server):
    top = [ActivationRecord(tokens=TOKENS, activations=[0, 4.0, 0, 0, 3.0])] * 4
    target = Target(None, top, [ActivationRecord(tokens=[" a", " b"], activations=[0, 0.1])] * 3)
    found = asyncio.run(explain(backend(server.base_url), target, "n", candidates=3))
    assert [s.explanation for s in found][0].startswith("kings and queens")
    assert len(found) == 3 and found[0].get_preferred_score() > 0.9
    assert server.state["chat"][-1]["n"] == 3


def test_servers_that_ignore_n_are_asked_again(server):
    server.state["ignore_n"] = True
    try:
        texts = asyncio.run(
            backend(server.base_url).complete([{"role": "user", "content": "x"}], 3, 10, 1.0)
        )
    finally:
        server.state["ignore_n"] = False
    assert len(texts) == 3


def test_an_unreachable_server_is_a_named_backend_error():
    dead = backend(f"http://127.0.0.1:{_free_port()}/v1", max_retries=0, timeout_s=2)
    with pytest.raises(BackendError, match=r"m at http://127.0.0.1:\d+/v1 .* cannot be reached"):
        asyncio.run(dead.simulate("kings", [TOKENS]))


def test_a_hung_server_times_out_naming_it(server):
    server.state["delay_s"] = 1.5
    try:
        slow = backend(server.base_url, max_retries=0, timeout_s=0.3)
        with pytest.raises(BackendTimeoutError, match="did not answer within 0.3 s"):
            asyncio.run(slow.complete([{"role": "user", "content": "x"}], 1, 5, 1.0))
    finally:
        server.state["delay_s"] = 0
    assert math.isfinite(slow.metadata.timeout_s)
