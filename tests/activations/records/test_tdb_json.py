"""neuron-explainer records: parsing, the HTTP response shape, and the cached store over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activations.io.storage import SourceNotFoundError, SourceReader
from activations.records.answers import neuron_record_response
from activations.records.tdb_json import (
    MalformedRecordError,
    NeuronRecord,
    parse_neuron_record,
    token_pair_counts_match,
)
from activations.records.tdb_store import TdbRecordStore, record_path
from registry.vocabulary import TOKEN_PAIR_DSTS

DATASET = Path(__file__).parents[2] / "fixtures" / "tdb" / "collated-activations"
RECORD_0_1 = (DATASET / "0" / "1.json").read_bytes()
RECORD_5_42 = (DATASET / "5" / "42.json").read_bytes()


def record_json(**changes) -> bytes:
    data = orjson.loads(RECORD_0_1)
    data.update(changes)
    return orjson.dumps(data)


def malformed_message(data: bytes | str, **kwargs) -> str:
    with pytest.raises(MalformedRecordError) as caught:
        parse_neuron_record(data, **kwargs)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


# -- parsing ---------------------------------------------------------------------------------------


def test_parses_the_published_format():
    record = parse_neuron_record(RECORD_0_1)
    assert (record.neuron_id.layer_index, record.neuron_id.neuron_index) == (0, 1)
    assert len(record.most_positive_activation_records) == 4
    assert len(record.random_sample) == 3
    assert [len(q) for q in record.random_sample_by_quantile] == [2, 2]
    assert record.quantile_boundaries == [-0.1699, 0.0213, 3.125]
    assert (record.mean, record.variance, record.skewness, record.kurtosis) == (
        -0.0312,
        0.0871,
        4.918,
        38.27,
    )
    top = record.most_positive_activation_records[0]
    assert top.tokens[:4] == [" The", " quick", " brown", " fox"]
    assert top.activations[3] == 3.125
    assert record.max_activation == 3.125
    assert parse_neuron_record(RECORD_5_42).max_activation == 7.5


def test_dump_gives_back_the_published_json():
    for raw in (RECORD_0_1, RECORD_5_42):
        assert parse_neuron_record(raw).model_dump(mode="json") == orjson.loads(raw)


def test_older_and_newer_files_are_accepted():
    """No dataclass_name tags, old NeuronId field names, a string layer, NaN moments (stdlib
    json), missing optional fields, and keys we do not know."""
    legacy = json.dumps(
        {
            "neuron_id": {"layer": "3", "idx": 7},
            "mean": float("nan"),
            "most_positive_activation_records": [{"tokens": ["a", "b"], "activations": [0, 2]}],
            "added_later": {"anything": [1, 2]},
        }
    )
    assert "NaN" in legacy
    record = parse_neuron_record(legacy)
    assert (record.neuron_id.layer_index, record.neuron_id.neuron_index) == (3, 7)
    assert record.mean is None and record.kurtosis is None
    assert record.random_sample == [] and record.random_sample_by_quantile is None
    assert record.dataclass_name == "NeuronRecord"
    assert record.most_positive_activation_records[0].activations == [0.0, 2.0]


def test_invalid_json_is_malformed_naming_the_source():
    message = malformed_message(RECORD_0_1[:-20], source="https://x/0/1.json")
    assert "https://x/0/1.json" in message and "not valid JSON" in message
    assert "not valid JSON" in malformed_message(b"\xff\xfe not json")
    assert "not valid JSON" in malformed_message(b"")


def test_mismatched_tokens_and_activations_are_malformed():
    data = orjson.loads(RECORD_0_1)
    data["most_positive_activation_records"][2]["activations"].pop()
    message = malformed_message(orjson.dumps(data))
    assert "most_positive_activation_records[2]" in message
    assert "tokens has length 15 but activations has length 14" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"[1, 2]", "record: Input should be an object"),
        (record_json(neuron_id=None), "neuron_id: Input should be an object"),
        (record_json(dataclass_name="ExplanationRecord"), "got 'ExplanationRecord'"),
        (record_json(neuron_id={"layer_index": 0}), "neuron_id.neuron_index: missing"),
        (
            record_json(random_sample=[{"tokens": ["a"], "activations": ["high"]}]),
            "random_sample[0].activations[0]: Input should be a valid number",
        ),
        (
            record_json(random_sample_by_quantile=[[{"tokens": "a b", "activations": [1]}]]),
            "random_sample_by_quantile[0][0].tokens: Input should be a valid array",
        ),
        (
            record_json(
                random_sample=[{"dataclass_name": "NeuronId", "tokens": [], "activations": []}]
            ),
            "random_sample[0].dataclass_name: expected dataclass_name 'ActivationRecord'",
        ),
    ],
)
def test_wrong_shapes_are_malformed_saying_what_and_where(data, expected):
    assert expected in malformed_message(data)


def test_many_problems_are_summarised():
    bad = [{"tokens": ["a"], "activations": []}] * 8
    message = malformed_message(record_json(random_sample=bad))
    assert message.count("tokens has length 1") == 5 and "and 3 more" in message


def test_token_pair_records():
    # 3 tokens attending to 1, 2, 3 tokens: 6 activations; with a window of 2 over 4 tokens: 7.
    assert token_pair_counts_match(3, 6) and token_pair_counts_match(4, 7)
    assert token_pair_counts_match(4, 4)  # window 1: each token to itself
    assert not token_pair_counts_match(4, 8) and not token_pair_counts_match(3, 7)
    assert not token_pair_counts_match(3, 0)
    assert {d.value for d in TOKEN_PAIR_DSTS} == {
        "attn_write_norm",
        "flattened_attn_write_to_latent_summed_over_heads",
    }
    pairs = record_json(
        random_sample=[],
        random_sample_by_quantile=None,
        most_positive_activation_records=[
            {"tokens": ["a", "b", "c"], "activations": [1, 2, 3, 4, 5, 6]}
        ],
    )
    assert parse_neuron_record(pairs, token_pairs=True).max_activation == 6
    assert "tokens has length 3 but activations has length 6" in malformed_message(pairs)
    four = record_json(random_sample=[{"tokens": ["a", "b", "c"], "activations": [1, 2, 3, 4]}])
    message = malformed_message(four, token_pairs=True)
    assert "random_sample[0]: 4 activations cannot be one per token pair of 3 tokens" in message


# -- the HTTP response shape -------------------------------------------------------------------


def test_response_has_neuron_explainers_shape():
    record = parse_neuron_record(RECORD_0_1)
    response = neuron_record_response(record, "gpt2-small")
    wire = orjson.loads(response.model_dump_json(by_alias=True))
    assert list(wire) == ["dataset", "maxActivation", "topActivations", "randomSample"]
    assert wire["dataset"] == "gpt2-small" and wire["maxActivation"] == 3.125
    raw = orjson.loads(RECORD_0_1)
    strip = [{"tokens": r["tokens"], "activations": r["activations"]} for r in raw["random_sample"]]
    assert wire["randomSample"] == strip
    assert len(wire["topActivations"]) == 4
    assert set(wire["topActivations"][0]) == {"tokens", "activations"}


def test_response_of_a_record_without_top_activations():
    record = NeuronRecord.model_validate({"neuron_id": {"layer_index": 0, "neuron_index": 0}})
    response = neuron_record_response(record, "/data/x")
    assert response.max_activation == 0.0 and response.top_activations == []


# -- the store ------------------------------------------------------------------------------------


class Upstream:
    """Serves files under a root as /data/{layer}/{neuron}.json, counting requests per path."""

    def __init__(self, root: Path, delay_s: float = 0.0):
        self.root = root
        self.delay_s = delay_s
        self.requests: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        file = self.root / request.match_info["tail"]
        if not file.is_file():
            return web.Response(status=404)
        return web.Response(body=file.read_bytes(), content_type="application/json")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_get("/data/{tail:.*}", self.handle)
        async with TestServer(app, host="127.0.0.1") as server:
            yield str(server.make_url("/data/"))


def reader() -> SourceReader:
    return SourceReader(timeout_s=2.0, retries=1, backoff_s=0.01, trust_env=False)


def test_record_path_and_bad_indices():
    assert record_path("https://h/c/", 3, 7) == "https://h/c/3/7.json"
    assert record_path("/data/c", 0, 12) == "/data/c/0/12.json"
    for layer, neuron, name in [
        (-1, 0, "layer"),
        (0, -5, "neuron"),
        ("3", 0, "layer"),
        (0, True, "neuron"),
    ]:
        with pytest.raises(ValueError, match=name):
            record_path("/data", layer, neuron)


def test_store_fetches_once_and_serves_hits_from_the_cache():
    upstream = Upstream(DATASET)

    async def main() -> list[NeuronRecord]:
        async with upstream.serving() as base, reader() as source:
            store = TdbRecordStore(source, cache_size=8)
            first = await store.get(base, 0, 1)
            again = await store.get(base.rstrip("/"), 0, 1)  # the same file, with or without "/"
            other = await store.get(base, 5, 42)
            return [first, again, other]

    first, again, other = asyncio.run(main())
    assert again is first
    assert first.neuron_id.neuron_index == 1 and other.neuron_id.neuron_index == 42
    assert upstream.requests == {"/data/0/1.json": 1, "/data/5/42.json": 1}


def test_store_evicts_the_least_recently_used():
    upstream = Upstream(DATASET)

    async def main() -> None:
        async with upstream.serving() as base, reader() as source:
            store = TdbRecordStore(source, cache_size=1)
            await store.get(base, 0, 1)
            await store.get(base, 5, 42)  # evicts 0/1
            await store.get(base, 5, 42)  # hit
            await store.get(base, 0, 1)  # fetched again

    asyncio.run(main())
    assert upstream.requests == {"/data/0/1.json": 2, "/data/5/42.json": 1}


def test_concurrent_requests_share_one_fetch():
    upstream = Upstream(DATASET, delay_s=0.1)

    async def main() -> list[NeuronRecord]:
        async with upstream.serving() as base, reader() as source:
            store = TdbRecordStore(source)
            waiters = [asyncio.ensure_future(store.get(base, 0, 1)) for _ in range(6)]
            await asyncio.sleep(0.02)
            waiters[0].cancel()  # one client going away does not cancel the others' fetch
            results = await asyncio.gather(*waiters[1:])
            assert waiters[0].cancelled()
            return results

    results = asyncio.run(main())
    assert all(r is results[0] for r in results)
    assert upstream.requests == {"/data/0/1.json": 1}


def test_store_errors_are_raised_and_not_cached(tmp_path: Path):
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "3.json").write_bytes(b'{"neuron_id": {"layer_index": 2, "neuron_index": ')
    upstream = Upstream(tmp_path)

    async def main(base: str, store: TdbRecordStore) -> None:
        for _ in range(2):
            with pytest.raises(SourceNotFoundError, match="/data/0/0.json"):
                await store.get(base, 0, 0)
            with pytest.raises(MalformedRecordError, match=r"/data/2/3.json: not valid JSON"):
                await store.get(base, 2, 3)
        with pytest.raises(ValueError, match="layer must be a non-negative integer, got -1"):
            await store.get(base, -1, 0)

    async def run() -> None:
        async with upstream.serving() as base, reader() as source:
            await main(base, TdbRecordStore(source))

    asyncio.run(run())
    assert upstream.requests == {"/data/0/0.json": 2, "/data/2/3.json": 2}


def test_store_reads_local_datasets():
    async def main() -> tuple[NeuronRecord, NeuronRecord]:
        async with reader() as source:
            store = TdbRecordStore(source)
            return await store.get(str(DATASET) + "/", 0, 1), await store.get(
                DATASET.as_uri(), 5, 42
            )

    local, via_url = asyncio.run(main())
    assert local == parse_neuron_record(RECORD_0_1)
    assert via_url.neuron_id.layer_index == 5
