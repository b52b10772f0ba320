"""The dataset card (`README.md`) of a pushed dataset, from its file's metadata: the YAML header
the Hub and `datasets` read (configs, features, splits, license, tags), written by `datasets`'
and huggingface_hub's own card classes as `push_to_hub` writes it, then what a reader needs to
trust and read the records: the model and corpus with their revisions and fingerprints, tokens
seen, top-k, the BOS rule, the refactoring, the quadrants, each column's meaning, and how to read
it with `datasets`, GLUScope's row rule and this project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from activations.publish.names import DEFAULT_LICENSE, HUB_TAG
from activations.publish.shards import DATA_DIR, SPLIT, Shards
from activations.records.schema import (
    GLU_LAYOUT,
    count_column,
    freq_column,
    layout_of_columns,
    max_indices_column,
    max_positions_column,
    max_values_column,
    mean_column,
    sum_column,
)
from registry.paths import local_path
from registry.vocabulary import (
    ALL_TOKENS,
    GLU_SITES,
    QUADRANT_SIGNS,
    QUADRANTS_TABLE,
    SITE_BY_HOOK,
)

CARD_TAGS = ("interpretability", "neuron", HUB_TAG)


def _hook_label(hook: str) -> str:
    site = SITE_BY_HOOK.get(hook)
    return site.label if site else "the MLP's activation (hook_post)"


def _quadrant_text(quadrant: str) -> str:
    if quadrant == ALL_TOKENS:
        return "every token"
    gate, in_ = QUADRANT_SIGNS[quadrant]
    return f"tokens with gate {'>' if gate > 0 else '<'} 0 and in {'>' if in_ > 0 else '<'} 0"


def _dtype(kind: pa.DataType) -> str:
    """A column's dtype as the card's features name it (float32, list<int64>...)."""
    if pa.types.is_list(kind):
        return f"list<{_dtype(kind.value_type)}>"
    return {pa.float32(): "float32", pa.float64(): "float64"}.get(kind, str(kind))


def column_meanings(schema: pa.Schema) -> dict[str, str]:
    """Every column's meaning, from the schema's own naming functions."""
    layout = layout_of_columns(schema.names)
    out = {
        "layer": "the layer (zero-based)",
        "neuron": "the neuron: its hidden dimension in the layer's MLP (zero-based)",
    }
    for q in layout.quadrants:
        where = _quadrant_text(q)
        out[freq_column(q)] = f"share of all tokens read: {where}"
        out[count_column(q)] = f"(ours) exact count of {where}, so files merge exactly"
        for h in layout.hooks:
            label = _hook_label(h)
            out[mean_column(q, h)] = f"mean of {label} over {where}"
            out[sum_column(q, h)] = f"(ours) exact float64 total of {label} over {where}"
        for h in layout.hooks:
            if (q, h) not in layout.max_pairs():
                continue
            label = _hook_label(h)
            out[max_values_column(q, h)] = (
                f"the top-k values of {label} largest in absolute value over {where}, one per "
                "document, strongest first; 0.0 in a slot no document reached"
            )
            out[max_indices_column(q, h)] = "the corpus row (document index) of each of those"
            out[max_positions_column(q, h)] = (
                "(ours) the token position of each of those maxima in its document; -1 in an "
                "empty slot"
            )
    return {name: out.get(name, "") for name in schema.names}


def _dataset_info(shards: Shards):
    """`datasets`' description of the shards: their features and their one split."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo

    splits = SplitDict()
    splits.add(SplitInfo(name=SPLIT, num_bytes=shards.n_bytes, num_examples=shards.n_rows))
    return DatasetInfo(
        features=Features.from_arrow_schema(shards.schema), splits=splits,
        download_size=shards.n_bytes, dataset_size=shards.n_bytes,
    )  # fmt: skip


def published_path(value: Any) -> Any:
    """A path on the pushing machine's disk (absolute, relative to where it ran, or file://)
    names nothing a reader can open and tells the world how that disk is laid out: only its
    last part is published. Hub ids and remote URLs are kept."""
    if not isinstance(value, str):
        return value
    try:
        path = local_path(value)
    except ValueError:
        return value
    if path is None:
        return value
    if os.path.isabs(path) or os.path.exists(path) or value.startswith((".", "~", "file:")):
        return Path(path).name or value
    return value


def published_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The file's metadata as the card shows it: its model and corpus paths cut as above."""
    cut = {k: published_path(metadata[k]) for k in ("model_path", "corpus") if k in metadata}
    return {**metadata, **cut}


def card_fields(m: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to register the dataset, in the YAML header (`neurons datasets
    --hub` reads it from the Hub's listing)."""
    keys = ("model", "model_path", "revision", "gguf_file", "corpus", "n_neurons", "top_k",
            "n_tokens", "refactor_glu", "bos_token", "schema_version")  # fmt: skip
    return {k: m.get(k) for k in keys if m.get(k) is not None} | {
        "layers": len(m.get("layers") or [])
    }


def card_text(shards: Shards, repo_id: str, license: str = DEFAULT_LICENSE,
              beside: dict[str, str] | None = None) -> str:  # fmt: skip
    """README.md: the YAML header, then the description."""
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    m = published_metadata(shards.metadata)
    model = m.get("model_path") or m.get("model") or "an unnamed model"
    data = DatasetCardData(
        license=license,
        tags=list(CARD_TAGS),
        task_categories=["tabular-regression"],
        pretty_name=f"Neuron activations of {m.get('model') or model}",
        size_categories=[_size_category(shards.n_rows)],
        glu_neurons=card_fields(m),
    )
    DatasetInfosDict({"default": _dataset_info(shards)}).to_dataset_card_data(data)
    files = [{"split": SPLIT, "path": f"{DATA_DIR}/{SPLIT}-*"}]
    MetadataConfigs({"default": {"data_files": files}}).to_dataset_card_data(data)
    body = _body(shards, repo_id, model, beside or {})
    return f"---\n{data.to_yaml()}\n---\n{body}"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):  # fmt: skip
        if n < limit:
            return name
    return "10M<n<100M"


def _provenance(m: dict[str, Any]) -> list[tuple[str, Any]]:
    bos = m.get("bos_token")
    return [
        ("model", m.get("model_path") or m.get("model")),
        ("model short name (this project's registry)", m.get("model")),
        ("model revision", m.get("revision") or "not pinned"),
        ("GGUF file", m.get("gguf_file")),
        ("architecture", m.get("architecture")),
        ("activation", m.get("hidden_act")),
        ("corpus", m.get("corpus")),
        ("corpus fingerprint (sha256 of the documents read, per range)",
         json.dumps(m.get("corpus_sha256"))),
        ("documents read (corpus rows)", json.dumps(m.get("documents"))),
        ("documents", m.get("n_documents")),
        ("tokens seen", m.get("n_tokens")),
        ("top-k", m.get("top_k")),
        ("max tokens per document", m.get("max_tokens")),
        ("BOS rule", f"`{bos}` put before every document its tokenizer begins with no BOS"
         if bos else "none added: documents read as the tokenizer gives them"),
        ("refactored (GLUScope's sign refactoring: in and the output flipped where "
         "w_gate·w_in < 0)", bool(m.get("refactor_glu"))),
        ("layers", f"{len(m.get('layers') or [])} (all), {m.get('n_neurons')} neurons each"),
        ("dtype", m.get("dtype")),
        ("schema version", m.get("schema_version")),
        ("written by", f"glu-neurons {m.get('version')}"),
    ]  # fmt: skip


def _body(shards: Shards, repo_id: str, model: str, beside: dict[str, str]) -> str:
    m = published_metadata(shards.metadata)
    n_neurons = m.get("n_neurons")
    lines = [
        f"# Neuron activations of {model}",
        "",
        f"One row per MLP neuron of `{model}` ({len(m.get('layers') or [])} layers x "
        f"{n_neurons} neurons = {shards.n_rows} rows), collated over `{m.get('corpus')}` by "
        "glu-neurons (`neurons collate`), in the layout and schema of "
        "the published [OLMo-7B-0424 neuron-activations dataset]"
        "(https://huggingface.co/datasets/sjgerstner/OLMo-7B-0424-hf_neuron-activations): "
        "its columns, names and dtypes first, then ours.",
        "",
        "## How it was made",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in _provenance(m) if v is not None],
        "",
        *[f"- {note}" for note in shards.notes],
        "",
        "## Rows and quadrants",
        "",
        f"Rows are sorted by (layer, neuron): neuron `n` of layer `l` is row "
        f"`l * {n_neurons} + n` (GLUScope's `activation_dataset[layer * d_mlp + neuron]`).",
    ]
    if layout_of_columns(shards.schema.names) is GLU_LAYOUT:
        lines += [
            "A neuron's gate is `g = x·W_gate` and its in `u = x·W_in`; its output is "
            "`act(g)·u`. Each token falls in one quadrant by the strict signs of (g, u) (an "
            "exact zero falls in none):",
            "",
            *[
                f"- `{q.name}`: gate {'>' if q.gate_sign > 0 else '<'} 0 and in "
                f"{'>' if q.in_sign > 0 else '<'} 0"
                for q in QUADRANTS_TABLE
            ],  # fmt: skip
            "",
            "Per quadrant and value ("
            + ", ".join(f"`{s.hook}`: {s.label}" for s in GLU_SITES)
            + '): the mean, and the top-k documents by largest |value| ("max" means max '
            "absolute value, so values may be negative).",
        ]
    lines += ["", "## Columns", "", "| column | dtype | meaning |", "| --- | --- | --- |"]
    meanings = column_meanings(shards.schema)
    for f in shards.schema:
        lines.append(f"| `{f.name}` | {_dtype(f.type)} | {meanings[f.name]} |")
    lines += ["", *_reading(repo_id, m, beside)]
    return "\n".join(lines) + "\n"


def _reading(repo_id: str, m: dict[str, Any], beside: dict[str, str]) -> list[str]:
    name = m.get("model") or repo_id.split("/")[-1]
    model_path = m.get("model_path") or name
    n_neurons = int(m.get("n_neurons") or 1)
    layer, neuron = min(3, len(m.get("layers") or [0]) - 1), min(1024, n_neurons - 1)
    lines = [
        "## Reading it",
        "",
        "With `datasets`:",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'records = load_dataset("{repo_id}", split="train")',
        f"row = records[{layer} * {n_neurons} + {neuron}]  # layer {layer}, neuron {neuron}",
        "```",
        "",
        "With glu-neurons (records read by ranged requests, one neuron "
        "at a time; the viewer, searches and the API on top):",
        "",
        "```python",
        "from registry import find_model, register_model, register_neuron_dataset_metadata",
        "",
        f'if find_model("{name}") is None:  # for example text and live runs',
        f'    register_model("{name}", "{model_path}")',
        "register_neuron_dataset_metadata(",
        f'    short_name="{name}",',
        '    derived_scalar_type="mlp_post_act",',
        f'    user_visible_name="{name} - MLP neurons",',
        f'    neuron_dataset_path="hf://datasets/{repo_id}",',
        '    format="glu_parquet",',
        f'    model="{name}",',
        f'    corpus="{m.get("corpus")}",',
        ")",
        "```",
        "",
        "or at once, for every derived scalar the file holds: `registry.register_glu_dataset"
        f'("{name}", "hf://datasets/{repo_id}", model="{name}", corpus="{m.get("corpus")}")`.',
    ]
    if beside:
        lines += ["", "## Beside the records", ""]
        lines += [f"- `{path}`: {what}" for path, what in beside.items()]
    return lines
