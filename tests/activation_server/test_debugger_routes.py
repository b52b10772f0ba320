"""TDB's inference routes, with the bodies its frontend writes (tests/fixtures/tdb), on the tiny
Llama: at the root for the server's debugger model and under /tdb/{short_name}/; the numbers
equal a brute force written by hand; bad input is a clear 4xx; ablations never leak."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM

from activation_server.app import create_app
from activation_server.settings import ServerSettings
from tests.activation_server.conftest import register_tiny
from tests.fixtures.tdb import frontend_requests as fe

PROMPT = "w1 w7 w3 w9 w12 w4"
TDB = {"prompt": PROMPT, "targets": [" w5"], "distractors": [" w6"], "top_and_bottom_k": 40}


@pytest.fixture
def client(tiny_dataset):
    register_tiny(tiny_dataset)
    settings = ServerSettings(max_tokens_per_request=40, debugger_model="tiny-llama")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def test_model_info_names_the_model_at_the_root_and_under_its_name(client):
    for path in ("/model_info", "/tdb/tiny-llama/model_info"):
        info = ok(client.post(path))
        assert info["modelName"] == "tiny-llama" and info["nLayers"] == 2
        assert info["hasMlpAutoencoder"] is False


def test_the_neuron_pages_logit_lens_batched_request(client, tiny_dataset):
    answer = ok(client.post("/tdb/tiny-llama/batched", json=fe.logit_lens_batched(1, 7)))
    inputs, outputs = answer["inferenceSubResponses"]
    top_in = inputs["processingResponseDataByName"]["singleton"]["topTokens"]
    top_out = outputs["processingResponseDataByName"]["singleton"]["topTokens"]
    assert len(top_in["top"]) == len(top_out["bottom"]) == 63  # the whole vocabulary
    model = AutoModelForCausalLM.from_pretrained(tiny_dataset["model"])
    write = model.model.layers[1].mlp.down_proj.weight[:, 7]  # the neuron forced to 1.0
    logits = (model.lm_head.weight * model.model.norm.weight) @ write
    best = int((logits - logits.mean()).argmax())
    assert top_out["top"][0]["token"] == model_tokenizer(tiny_dataset).decode([best])
    assert top_out["top"][0]["normalizedScalar"] == pytest.approx(1.0) or top_out["bottom"][0][
        "normalizedScalar"
    ] == pytest.approx(-1.0)
    gate_read = model.model.embed_tokens.weight @ model.model.layers[1].mlp.gate_proj.weight[7]
    assert top_in["top"][0]["scalar"] == pytest.approx(float(gate_read.detach().max()), rel=1e-5)


def model_tokenizer(paths):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(paths["model"])


def test_activations_for_prompt_and_attention_for_prompt(client):
    body = fe.activations_for_prompt("tiny-llama", 1, 7, PROMPT)
    answer = ok(client.post("/derived_scalars", json=body))
    data = answer["derivedScalarsResponseData"]
    tokens = answer["inferenceAndTokenData"]["tokensAsStrings"]
    assert len(data["activations"]) == len(data["normalizedActivations"]) == len(tokens)
    live = ok(client.post("/activations", json={"model": "tiny-llama", "layer": 1,
                                                "neurons": [7], "text": PROMPT}))  # fmt: skip
    # two passes of different shapes: float32 sums may round apart (seen: 1.5e-6 relative on AVX2)
    expected = live["results"][0]["neurons"][0]["values"]
    assert data["activations"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert all(0.0 <= v for v in data["normalizedActivations"])
    body = fe.attention_for_prompt("tiny-llama", 1, 3, PROMPT)
    rows = ok(client.post("/derived_attention_scalars", json=body))
    rows = rows["derivedAttentionScalarsResponseData"]["tokenAndAttentionScalarsList"]
    assert [len(r["scalars"]) for r in rows] == list(range(1, len(tokens) + 1))


def test_tdb_alpha_first_load_ablation_and_trace(client, tiny_dataset):
    from tests.activations.debugger.test_scalars import brute_force_on

    first = ok(client.post("/batched_tdb", json=fe.tdb_first_load(**TDB)))
    (sub,) = first["inferenceSubResponses"]
    specs = sub["processingResponseDataByName"]
    table = specs["topKComponents"]
    names = {
        "topKComponents", "componentSumsForTokenDisplay", "upvotedOutputTokens",
        "inputTokensThatUpvoteMlp", "inputTokensThatUpvoteAttnQ", "inputTokensThatUpvoteAttnK",
        "tokenPairAttribution", "topOutputTokenLogits",
    }  # fmt: skip
    assert set(specs) == names
    n = len(table["nodeIndices"])
    assert all(len(v) == n for v in table["activationsByGroupId"].values())
    assert {i["nodeType"] for i in table["nodeIndices"]} >= {"mlp_neuron", "attention_head"}
    assert len(specs["upvotedOutputTokens"]["topTokensList"]) == n
    logits = specs["topOutputTokenLogits"]
    assert len(logits["vocabTokenStringsForIndices"]) == 63
    ids = sub["inferenceResponse"]["inferenceAndTokenData"]["tokensAsInts"]
    reference = brute_force_on(tiny_dataset["model"], ids, 5 + 3, 6 + 3)
    loss = sub["inferenceResponse"]["inferenceAndTokenData"]["loss"]
    assert loss == pytest.approx(reference["loss"], abs=1e-5)
    # an MLP neuron of the table: its act × grad as the brute force has it
    at = next(i for i, node in enumerate(table["nodeIndices"]) if node["nodeType"] == "mlp_neuron")
    node = table["nodeIndices"][at]
    layer, (token, neuron) = node["layerIndex"], node["tensorIndices"]
    expected = reference["post"][layer] * reference["post_grad"][layer]
    got = table["activationsByGroupId"]["act_times_grad"][at]
    assert got == pytest.approx(float(expected[token, neuron]), abs=1e-6)

    ablated = ok(client.post("/batched_tdb", json=fe.tdb_with_ablation(node, **TDB)))
    left, right = ablated["inferenceSubResponses"]
    left_table = left["processingResponseDataByName"]["topKComponents"]
    right_table = right["processingResponseDataByName"]["topKComponents"]
    assert left_table["nodeIndices"] == right_table["nodeIndices"]  # compared row by row
    by_hand = brute_force_on(tiny_dataset["model"], ids, 8, 9, ablate=(layer, token, neuron, 0.0))
    assert left["inferenceResponse"]["inferenceAndTokenData"]["loss"] == pytest.approx(
        by_hand["loss"], abs=1e-5
    )
    assert right["inferenceResponse"]["inferenceAndTokenData"]["loss"] == pytest.approx(loss)

    traced = ok(client.post("/batched_tdb", json=fe.tdb_trace_upstream(node, **TDB)))
    data = traced["inferenceSubResponses"][0]["inferenceResponse"]["inferenceAndTokenData"]
    assert data["loss"] is None and data["activationValueForBackwardPass"] is not None


NODE = fe.mlp_node(0, 0, 1)


def top_k(groups: dict, **spec) -> dict:
    """TDB's MultipleTopKDerivedScalarsRequest on the prompt, with the logit difference."""
    loss = {"name": "logit_diff", "targetTokens": [" w5"], "distractorTokens": [" w6"]}
    return {
        "inferenceRequestSpec": {"prompt": PROMPT, "lossFnConfig": loss},
        "multipleTopKDerivedScalarsRequestSpec": {
            "dstListByGroupId": groups,
            "topAndBottomK": 3,
            **spec,
        },
    }


def test_multiple_top_k_ranks_act_times_grad_over_every_layer(client):
    groups = {"act_times_grad": ["mlp_act_times_grad", "unflattened_attn_act_times_grad"]}
    answer = ok(client.post("/multiple_top_k_derived_scalars", json=top_k(groups)))
    data = answer["multipleTopKDerivedScalarsResponseData"]
    values = data["activationsByGroupId"]["act_times_grad"]
    assert len(values) == len(data["nodeIndices"]) == 6  # top 3 and bottom 3
    assert values[:3] == sorted(values[:3], reverse=True) and max(values) == values[0]
    sums = data["intermediateSumActivationsByDstByGroupId"]["act_times_grad"]
    assert sums["unflattened_attn_act_times_grad"]["tensorType"] == "tensor_2d"


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/tdb/nope/batched_tdb", fe.tdb_first_load(**TDB), 404, "tiny-llama"),
        ("/batched_tdb", fe.tdb_with_ablation(fe.mlp_node(7, 0, 1), **TDB), 404, "0-1"),
        ("/batched_tdb", fe.tdb_with_ablation(fe.head_node(0, 0, 0, 9), **TDB), 404, "0-3"),
        ("/batched_tdb", fe.tdb_with_ablation(fe.mlp_node(0, 0, 99), **TDB), 404, "0-23"),
        ("/batched_tdb", fe.tdb_first_load(prompt="w1 " * 60, targets=[" w5"]), 413, "40"),
        ("/batched_tdb", fe.tdb_first_load(prompt=PROMPT, targets=[" w5 w6"]), 422, "w5"),
        ("/batched", fe.logit_lens_batched(5, 7), 404, "layer 5"),
        (
            "/multiple_top_k_derived_scalars",
            top_k({"activation": ["vocab_token_write_to_input_direction"]}),
            422,
            "valid",
        ),
        (
            "/multiple_top_k_derived_scalars",
            top_k({"logits": ["logits"]}, tokenIndex=50),
            422,
            "7 tokens",
        ),
        (
            "/batched_tdb",
            {"subRequests": [fe.tdb_spec(node_ablations=[{"nodeIndex": NODE, "value": 1e9}])]},
            422,
            "1000000",
        ),
    ],
)
def test_bad_input_is_a_clear_client_error(client, path, body, status, says):
    answer = client.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert says in str(answer.json()["detail"])


def test_a_full_queue_is_a_503_with_retry_after(tiny_dataset):
    register_tiny(tiny_dataset)
    settings = ServerSettings(live_queue_size=1, debugger_model="tiny-llama")
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        ok(client.post("/model_info"))
        gate, started = threading.Event(), threading.Event()
        worker = app.state.services.models.worker("tiny-llama")
        worker.submit(lambda runner: (started.set(), gate.wait(30)))  # holds the thread
        assert started.wait(30)
        worker.submit(lambda runner: None)  # fills the queue of one
        try:
            answer = client.post("/batched_tdb", json=fe.tdb_first_load(**TDB))
        finally:
            gate.set()
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert "full" in answer.json()["detail"]


def test_ablations_are_per_request_under_concurrency(client):
    node = fe.mlp_node(0, 4, 7)  # layer 0 at token 4: reaches the last token through attention
    plain_body = fe.tdb_first_load(**TDB)
    ablated_body = fe.tdb_with_ablation(node, **TDB)

    def loss_of(body):
        answer = ok(client.post("/batched_tdb", json=body))
        return [s["inferenceResponse"]["inferenceAndTokenData"]["loss"]
                for s in answer["inferenceSubResponses"]]  # fmt: skip

    plain, ablated = loss_of(plain_body), loss_of(ablated_body)
    assert ablated[0] != pytest.approx(plain[0], abs=1e-7) and ablated[1] == plain[0]
    bodies = [plain_body, ablated_body] * 6
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(loss_of, bodies))
    for body, result in zip(bodies, results, strict=True):
        assert result == (plain if body is plain_body else ablated)
    assert torch.isfinite(torch.tensor(plain)).all()
