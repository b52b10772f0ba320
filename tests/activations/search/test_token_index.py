"""Token search against a scan of every record: each stored top example's token read from its
document, tokenized here, counted per neuron in plain Python."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import registry
from activations.api import Session
from activations.collate import CollateConfig, collate
from activations.models.tokens import Tokens
from activations.search.answers import SearchError
from activations.search.token_index import INDEX_SUFFIX, TokenIndex
from registry.locations import neurons_home
from registry.vocabulary import DST_TO_HOOK, GLU_HOOKS, QUADRANTS, has_max
from tests.tiny import random_documents, word_tokenizer, write_jsonl

DOCS = random_documents(24, seed=3)


@pytest.fixture(scope="module")
def collated(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("token-index")
    corpus = write_jsonl(root / "docs.jsonl", DOCS)
    registry.register_model("tok-llama", str(tiny_models["llama"]))
    out = collate(
        CollateConfig(
            model="tok-llama", out=str(root / "records.parquet"), corpus=str(corpus), top_k=5,
            batch_size=4, engine="eager", progress=False,
        )
    )  # fmt: skip
    return {"parquet": out, "corpus": corpus, "model": tiny_models["llama"]}


def register(paths, name="tok", parquet=None) -> None:
    registry.register_model("tok-llama", str(paths["model"]))
    registry.register_glu_dataset(
        name, str(parquet or paths["parquet"]), model="tok-llama", corpus=str(paths["corpus"]),
        replace=True,
    )  # fmt: skip


def scan(parquet, hook: str) -> dict[int, list[tuple]]:
    """Per token id: (layer, neuron, count, signed value of largest |value|, quadrants), sorted
    as token search ranks them."""
    tokens = Tokens(word_tokenizer())
    ids = [tokens.encode(d, 1024) for d in DOCS]
    per_token: dict[int, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    for row in pq.read_table(parquet).to_pylist():
        for q in QUADRANTS:
            if not has_max(q, hook):
                continue
            values = row[f"{q}_{hook}_max_values"]
            docs, positions = row[f"{q}_{hook}_max_indices"], row[f"{q}_{hook}_max_positions"]
            for value, doc, position in zip(values, docs, positions, strict=True):
                if value != 0 and doc >= 0:
                    per_token[ids[doc][position]][(row["layer"], row["neuron"])].append((value, q))
    ranked = {}
    for token, neurons in per_token.items():
        rows = []
        for (layer, neuron), found in neurons.items():
            strongest = max(found, key=lambda f: abs(f[0]))[0]
            quadrants = defaultdict(int)
            for _, q in found:
                quadrants[q] += 1
            rows.append((layer, neuron, len(found), strongest, dict(quadrants)))
        rows.sort(key=lambda r: (-r[2], -abs(r[3]), r[0], r[1]))
        ranked[token] = rows
    return ranked


@pytest.mark.parametrize("dst", ["mlp_post_act", "mlp_pre_act", "mlp_swish"])
def test_token_search_is_a_scan_of_every_record(collated, dst):
    register(collated)
    assert os.path.exists(str(collated["parquet"]) + INDEX_SUFFIX)  # written by collation
    want = scan(collated["parquet"], DST_TO_HOOK[dst])
    dataset = Session().open_dataset("tok", dst)
    assert len(want) > 10  # the corpus's words peak in many places
    for token_id, rows in want.items():
        got = dataset.search_token(token_id=token_id, top=1000)
        assert got.examples == sum(r[2] for r in rows)
        assert [(h.layer, h.neuron, h.count, h.quadrants) for h in got.neurons] == [
            (r[0], r[1], r[2], r[4]) for r in rows
        ]
        assert [h.max_value for h in got.neurons] == pytest.approx([r[3] for r in rows])
    assert 0 not in want  # [PAD]: in no document
    nothing = dataset.search_token(token_id=0)
    assert nothing.neurons == [] and nothing.examples == 0 and nothing.indexed > 0


def test_a_token_is_given_as_text_of_one_token(collated):
    register(collated)
    dataset = Session().open_dataset("tok", "mlp_post_act")
    by_text = dataset.search_token(" w7", top=3)
    assert by_text.token_id == word_tokenizer().convert_tokens_to_ids("w7")
    assert by_text == dataset.search_token(token_id=by_text.token_id, top=3).model_copy(
        update={"token": " w7"}
    )
    with pytest.raises(SearchError, match=r"'w7 w8' is 2 tokens .*\['w7', 'w8'\]"):
        dataset.search_token("w7 w8")
    with pytest.raises(SearchError, match="tokenId 999 is out of range: valid ids are 0-62"):
        dataset.search_token(token_id=999)
    with pytest.raises(SearchError, match="one of them"):
        dataset.search_token()


def test_an_index_is_built_for_an_older_file_and_again_when_it_is_replaced(collated, tmp_path):
    copy = tmp_path / "older.parquet"
    shutil.copy(collated["parquet"], copy)  # no index beside it
    register(collated, "older", copy)
    register(collated)
    session = Session()
    dataset = session.open_dataset("older", "mlp_post_act")
    first = dataset.search_token(" w7", top=1000)
    index_file = tmp_path / ("older.parquet" + INDEX_SUFFIX)
    assert index_file.exists() and TokenIndex.open(index_file).made_from([str(copy)])
    built_here = Session().open_dataset("tok", "mlp_post_act").search_token(" w7", top=1000)
    assert first.neurons and [h.model_dump(exclude={"page"}) for h in first.neurons] == [
        h.model_dump(exclude={"page"}) for h in built_here.neurons
    ]
    # replaced by a file of other records (layer 1's alone): indexed anew
    table = pq.read_table(collated["parquet"])
    pq.write_table(table.filter(pc.equal(table["layer"], 1)), copy)
    again = dataset.search_token(" w7", top=1000)
    assert {h.layer for h in first.neurons} == {0, 1} and {h.layer for h in again.neurons} == {1}
    assert TokenIndex.open(index_file).made_from([str(copy)])
    keep = [c for c in table.column_names if not c.endswith("hook_post_max_positions")]
    pq.write_table(table.select(keep), copy)
    with pytest.raises(SearchError, match="store no positions"):
        dataset.search_token(" w7")


def test_a_file_without_positions_says_what_token_search_needs(collated, tmp_path):
    table = pq.read_table(collated["parquet"])
    published_like = tmp_path / "published.parquet"
    pq.write_table(table.select([c for c in table.column_names if "positions" not in c]),
                   published_like)  # fmt: skip
    register(collated, "pub", published_like)
    with pytest.raises(SearchError, match="no positions .* running the model"):
        Session().open_dataset("pub", "mlp_post_act").search_token(" w7")


def test_an_index_that_cannot_be_written_beside_goes_under_the_home(collated, tmp_path):
    shutil.copy(collated["parquet"], tmp_path / "r.parquet")
    (tmp_path / ("r.parquet" + INDEX_SUFFIX)).mkdir()  # in the way (as root, modes are not)
    register(collated, "ro", tmp_path / "r.parquet")
    got = Session().open_dataset("ro", "mlp_post_act").search_token(" w7")
    home = neurons_home() / "token_index"
    assert got.neurons and [p for p in home.iterdir() if p.name.startswith("r.parquet-")]


def test_hooks_without_maxima_are_not_indexed(collated):
    index = TokenIndex.open(collated["parquet"].with_name("records.parquet" + INDEX_SUFFIX))
    assert set(index.hooks) == {h for h in GLU_HOOKS if any(has_max(q, h) for q in QUADRANTS)}
