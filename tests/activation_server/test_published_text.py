"""Every example of a published neuron with its text: olmo-7b's registry entries as they are, over
a local Hub serving a replica of the records, one of sjgerstner/dolma-small (each document's text
begins `document <its index>`) and OLMo's tokenizer without weights. Documents come by ranged
reads (the corpus is never downloaded); the max is located where the model can run."""

from __future__ import annotations

import pytest

import registry
from activation_server.app import create_app
from activation_server.settings import ServerSettings
from activations.models.live import ModelRunner
from registry.vocabulary import GATE_HOOK, IN_HOOK, quadrant_of
from tests.activation_server.test_concurrency import call
from tests.corpus_replica import BOS, write_corpus, write_tiny_olmo, write_tokenizer_repo
from tests.replica import write_replica
from tests.servers import LiveServer

RECORDS = "sjgerstner/OLMo-7B-0424-hf_neuron-activations"
LAYERS, NEURONS, DOCUMENTS = 2, 64, 300
SETTINGS = ServerSettings(upstream_timeout_s=5.0)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("published-text")
    write_replica(root / "records", LAYERS, NEURONS, shards=1, n_documents=DOCUMENTS)
    texts = write_corpus(root / "dolma", DOCUMENTS)
    return {
        "records": root / "records",
        "dolma": root / "dolma",
        "tokenizer": write_tokenizer_repo(root / "tokenizer"),
        "tiny-olmo": write_tiny_olmo(root / "tiny-olmo"),
        "texts": texts,
    }


@pytest.fixture
def hub(local_hub, replicas):
    local_hub.add_repo("dataset", RECORDS, str(replicas["records"]))
    local_hub.add_repo("dataset", "sjgerstner/dolma-small", str(replicas["dolma"]))
    local_hub.add_repo("model", "allenai/OLMo-7B-0424-hf", str(replicas["tokenizer"]))
    return local_hub


@pytest.fixture
def server(hub):
    with LiveServer(create_app(SETTINGS), SETTINGS) as live:
        yield live


def examples_of(body: dict, hook: str = "hook_post") -> list[dict]:
    return [e for q in body["quadrants"] for e in q["examples"].get(hook, [])]


def named_index(tokens: list[str]) -> int:
    """The index a document's text names: the digits after `document`."""
    at = tokens.index("document")
    digits = []
    for token in tokens[at + 1 :]:
        if not token.isdigit():
            break
        digits.append(token)
    return int("".join(digits))


def test_every_example_shows_its_own_document_with_the_tokenizer_alone(server, hub, replicas):
    status, body = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/1/5?context=4")
    assert status == 200, body
    examples = examples_of(body)
    assert len(examples) > 30
    for example in examples:
        tokens = example["tokens"]
        assert tokens, example
        # no position stored, no model to run: the document's opening, BOS first
        assert example["position"] is None and example["windowStart"] == 0
        index = example["documentIndex"]
        length = 1 + len(replicas["texts"][index].split()) + len(str(index)) - 1  # digits apart
        assert tokens[0] == BOS and len(tokens) == min(9, length)
        assert named_index(tokens) == example["documentIndex"]
    assert "located once the model runs" in body["contextNote"]
    assert "over the 4.0 GB" in body["contextNote"]
    # the corpus came by ranged reads of its text chunks, never whole
    reads = [entry for entry in hub.log if "dolma-small/resolve" in entry[1]]
    assert reads and all(entry[3] and entry[3].startswith("bytes=") for entry in reads)
    # and no weights were asked for: the tokenizer's files and config only
    model_files = [e[1] for e in hub.log if "/allenai/OLMo-7B-0424-hf/resolve/" in e[1]]
    assert model_files and not any(".safetensors" in f or ".bin" in f for f in model_files)


def test_the_max_is_located_where_the_model_can_run(server, hub, replicas):
    registry.register_model(
        "olmo-7b", str(replicas["tiny-olmo"]), user_visible_name="OLMo (tiny)",
        refactor_glu=True, bos_token=BOS, replace=True,
    )  # fmt: skip
    path = "/neuron_record/olmo-7b/mlp_post_act/1/5?context=3&activations=true"
    status, body = call(server.url, "GET", path)
    assert status == 200, body
    runner = ModelRunner(registry.get_model("olmo-7b"))
    located = 0
    for quadrant in body["quadrants"]:
        for example in quadrant["examples"]["hook_post"]:
            ids = runner.tokens.encode(replicas["texts"][example["documentIndex"]])
            start, tokens = example["windowStart"], example["tokens"]
            assert tokens == runner.tokens.decode_each(ids[start : start + len(tokens)])
            values = runner.neuron_values([ids], 1, 5, [GATE_HOOK, IN_HOOK, "hook_post"])[0]
            inside = [
                t for t in range(len(ids))
                if quadrant_of(values[GATE_HOOK][t], values[IN_HOOK][t]) == quadrant["name"]
            ]  # fmt: skip
            if not inside:  # the replica's random records: this quadrant may be empty here
                assert example["position"] is None
                continue
            best = max(inside, key=lambda t: abs(values["hook_post"][t]))
            assert example["position"] == best
            at = best - example["windowStart"]
            assert example["activations"]["hook_post"][at] == pytest.approx(
                values["hook_post"][best], abs=1e-5
            )
            located += 1
    assert located > 5


def test_a_document_that_cannot_be_fetched_says_so_and_the_rest_show(server, hub):
    asked = []

    def fault(method, path):  # the second shard's footer comes, its documents do not
        if "dolma-small/resolve/main/data/train-00001-of-00003" in path:
            asked.append(path)
            return 403 if len(asked) > 1 else None
        return None

    hub.fault = fault
    status, body = call(server.url, "GET", "/neuron_record/olmo-7b/mlp_post_act/0/9?context=2")
    assert status == 200, body
    examples = examples_of(body)
    failed = [e for e in examples if e["note"]]
    shown = [e for e in examples if e["tokens"]]
    assert failed and shown and len(failed) + len(shown) == len(examples)
    assert all(100 <= e["documentIndex"] < 200 for e in failed)  # the second shard's
    assert all("403" in e["note"] and e["tokens"] is None for e in failed)
    assert all(named_index(e["tokens"]) == e["documentIndex"] for e in shown)


def test_the_olmo_neuron_page_in_chromium(page, server, replicas):
    from playwright.sync_api import expect

    page.goto(server.url + "/neuron/olmo-7b/mlp_post_act/1/5")
    page.locator("#record[data-state=done] #quadrant-table").wait_for()
    expect(page.locator("#quadrant-table tbody tr")).to_have_count(4)
    examples = page.locator("#examples .example")
    assert examples.count() > 30
    first = examples.first
    expect(first.locator(".meta")).to_contain_text("its opening")
    tokens = first.locator(".tok").all_inner_texts()
    label = first.locator(".meta").first.inner_text()
    index = int(label.split()[1])  # "doc N · its opening"
    assert tokens[0] == BOS and named_index(tokens) == index
    expect(page.locator("#examples-status")).to_contain_text("located once the model runs")
    assert page.locator("#examples .tok.max").count() == 0  # no max known: none outlined
    # where the model can run, each example's max is located and outlined
    registry.register_model(
        "olmo-7b", str(replicas["tiny-olmo"]), user_visible_name="OLMo (tiny)",
        refactor_glu=True, bos_token=BOS, replace=True,
    )  # fmt: skip
    page.goto(server.url + "/neuron/olmo-7b/mlp_post_act/0/3")
    page.locator("#record[data-state=done] #quadrant-table").wait_for()
    page.locator("#examples .tok.max").first.wait_for()
    assert page.locator("#examples .tok.coloured").count() > 0
