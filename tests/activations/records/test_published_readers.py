"""Our files as the published dataset's own readers read them (sjgerstner/gluscope:
recompute.neuron_data_from_dataset and c_neuron_vis._vis_stats, re-implemented here from their
description), and files of the previous version still read and merge."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import registry
from activations.collate import CollateConfig, collate
from activations.collate.merge import merge_files
from activations.records.glu_parquet import GluParquetReader
from activations.records.schema import METADATA_KEY
from tests.tiny import random_documents, write_jsonl

CASES = ["gate+_in+", "gate+_in-", "gate-_in+", "gate-_in-"]


def gluscope_reader(rows: list[dict], layer: int, neuron: int, d_mlp: int) -> dict:
    """Their row lookup and column parsing: activation_dataset[layer * d_mlp + neuron]; the
    last '_' part of a column is its statistic; '_indices' columns with their '_values' are the
    top examples."""
    data = rows[layer * d_mlp + neuron]
    parsed: dict = {}
    for key, value in data.items():
        if key in ("layer", "neuron"):
            continue
        if key.endswith("_indices"):
            split = key[: -len("_indices")].split("_")
            case = ("_".join(split[:2]), "_".join(split[2:-1]), "max")
            parsed[case] = {"indices": value, "values": data[key[: -len("_indices")] + "_values"]}
            continue
        if key.endswith("_values"):
            continue
        if key.endswith("_freq"):
            parsed[(key[: -len("_freq")], "freq")] = value
            continue
        split = key.split("_")
        parsed[("_".join(split[:2]), "_".join(split[2:-1]), split[-1])] = value
    parsed["row"] = (data["layer"], data["neuron"])
    return parsed


def shown_average(parsed: dict, case: str, hook: str) -> float:
    """_vis_stats's "Avg": the 'sum' statistic where there is one, else the mean."""
    return (
        parsed[(case, hook, "sum")]
        if (case, hook, "sum") in parsed
        else parsed[(case, hook, "mean")]
    )


def shown_examples(parsed: dict, case: str, hook: str) -> list[int]:
    """_vis_examples: a section is skipped where its first value is 0; slots of value 0 hold no
    example."""
    top = parsed[(case, hook, "max")]
    if not top["values"] or top["values"][0] == 0:
        return []
    return [i for i, v in zip(top["indices"], top["values"], strict=True) if v != 0]


@pytest.fixture
def ours(tmp_path, tiny_models):
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(20, seed=4))
    out = collate(
        CollateConfig(
            model="tiny-llama", out=str(tmp_path / "ours.parquet"), corpus=str(corpus),
            top_k=16, batch_size=3, engine="eager", progress=False,
        )
    )  # fmt: skip
    return out


def test_their_reader_reads_our_file_right(ours):
    rows = pq.read_table(ours).to_pylist()
    meta = json.loads(pq.read_schema(ours).metadata[METADATA_KEY])
    assert meta["schema_version"] == "2" and meta["all_layers"] is True
    d_mlp = meta["n_neurons"]
    dataset = GluParquetReader(str(ours))
    for layer, neuron in [(0, 0), (0, 5), (1, 23), (1, 7)]:
        parsed = gluscope_reader(rows, layer, neuron, d_mlp)
        assert parsed["row"] == (layer, neuron)  # row = layer * d_mlp + neuron holds
        ours_record = dataset.read_record(layer, neuron)
        for case in CASES:
            for hook in ("hook_post", "hook_pre", "hook_pre_linear", "swish"):
                mean = ours_record[f"{case}_{hook}_mean"]
                shown = shown_average(parsed, case, hook)
                assert (math.isnan(mean) and math.isnan(shown)) or shown == mean  # not a total
            shown = shown_examples(parsed, case, "hook_post")
            values = ours_record[f"{case}_hook_post_max_values"]
            listed = ours_record[f"{case}_hook_post_max_indices"]
            assert shown == [d for d, v in zip(listed, values, strict=True) if v != 0]
            # 20 documents were read: every slot names one of them, never -1 (their last row)
            assert all(0 <= d < 20 for d in parsed[(case, "hook_post", "max")]["indices"])


def test_a_file_of_some_layers_says_so(tmp_path, tiny_models):
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(5, seed=4))
    settings = dict(model="tiny-llama", corpus=str(corpus), top_k=4, engine="eager", progress=False)
    low = collate(CollateConfig(out=str(tmp_path / "low.parquet"), layers=[0], **settings))
    high = collate(CollateConfig(out=str(tmp_path / "high.parquet"), layers=[1], **settings))
    meta = json.loads(pq.read_schema(low).metadata[METADATA_KEY])
    assert meta["all_layers"] is False and "merge it with the other layers" in meta["layers_note"]
    whole = merge_files([low, high], tmp_path / "whole.parquet")
    merged = json.loads(pq.read_schema(whole).metadata[METADATA_KEY])
    assert merged["all_layers"] is True and merged["layers_note"] is None


def as_version_1(path, out) -> None:
    """The same file as the previous version wrote it: totals named _sum, empty slots -1."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if name.endswith("_max_indices"):
            positions = table.column(name.replace("_indices", "_positions")).to_pylist()
            indices = column.to_pylist()
            column = pa.array(
                [
                    [d if p >= 0 else -1 for d, p in zip(i, q, strict=True)]
                    for i, q in zip(indices, positions, strict=True)
                ],
                type=column.type,
            )
        columns[name.replace("_total", "_sum")] = column
    meta = {k: v for k, v in meta.items() if k not in ("model_layers", "all_layers", "layers_note")}
    meta["schema_version"] = "1"
    old = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    pq.write_table(old, out, row_group_size=128)


def test_version_1_files_still_read_and_merge(tmp_path, tiny_models):
    registry.register_model("tiny-llama", str(tiny_models["llama"]), user_visible_name="T")
    corpus = write_jsonl(tmp_path / "docs.jsonl", random_documents(9, seed=6))
    settings = dict(
        model="tiny-llama", corpus=str(corpus), top_k=16, engine="eager", progress=False
    )
    whole = collate(CollateConfig(out=str(tmp_path / "whole.parquet"), **settings))
    first = collate(CollateConfig(out=str(tmp_path / "a.parquet"), doc_range=(0, 4), **settings))
    second = collate(CollateConfig(out=str(tmp_path / "b.parquet"), doc_range=(4, 9), **settings))
    as_version_1(first, tmp_path / "a1.parquet")
    old = GluParquetReader(str(tmp_path / "a1.parquet")).read_record(1, 3)
    new = GluParquetReader(str(first)).read_record(1, 3)
    assert old["gate+_in+_hook_post_max_values"] == new["gate+_in+_hook_post_max_values"]
    merged = merge_files([tmp_path / "a1.parquet", second], tmp_path / "merged.parquet")
    got, want = pq.read_table(merged), pq.read_table(whole)
    for name in want.column_names:
        if name.endswith(("_indices", "_positions", "_count")):
            assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    assert json.loads(got.schema.metadata[METADATA_KEY])["schema_version"] == "2"
