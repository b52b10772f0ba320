"""What of a model is here without loading it: its tokenizer alone (no weights: a 7B model's
tokenizer is a few MB), and whether running it for example values is within this machine's
budget (reading a record must not start a 28 GB download or fill the memory).

A Hub model's tokenizer files come through huggingface_hub at the endpoint and token of the
moment (HF_ENDPOINT, HF_TOKEN), at the registered revision.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from activations.models.loading import gguf_cache_path, resolve_model_folder
from registry.metadata import ModelMetadata

TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "*.tiktoken",
    "config.json",
]
RETRY_AFTER_S = 60.0
BYTES_PER_PARAMETER = 4  # models run in float32 here


def model_files(metadata: ModelMetadata, patterns: list[str]) -> Path:
    """A folder holding the model's files that match `patterns`: its own folder where it is on
    this machine, else those files fetched from the Hub (into huggingface_hub's cache)."""
    source = resolve_model_folder(metadata.hf_path_or_id)
    if os.path.isdir(source):
        return Path(source)
    from huggingface_hub import snapshot_download

    from activations.io import hub

    folder = snapshot_download(
        source,
        revision=metadata.revision,
        allow_patterns=patterns,
        endpoint=hub.endpoint(),
        token=hub.token(),
    )
    return Path(folder)


def load_tokenizer(metadata: ModelMetadata):
    """The model's tokenizer without its weights (padding on the right, as load_model sets)."""
    from transformers import AutoTokenizer

    if metadata.gguf_file:
        cached = gguf_cache_path(metadata)
        if (cached / "tokenizer_config.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(str(cached))
        else:  # parsed from the GGUF file itself (its vocabulary; no tensors)
            source = resolve_model_folder(metadata.hf_path_or_id)
            tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=metadata.gguf_file)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(model_files(metadata, TOKENIZER_FILES)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def estimated_bytes(metadata: ModelMetadata) -> int | None:
    """The model's weights in float32, from its config (a GGUF file: its size de-quantised);
    None where nothing says."""
    if metadata.gguf_file:
        cached = gguf_cache_path(metadata) / "model.safetensors"
        if cached.exists():
            return cached.stat().st_size
        gguf = Path(resolve_model_folder(metadata.hf_path_or_id)) / metadata.gguf_file
        return gguf.stat().st_size * 8 if gguf.exists() else None  # ~4 bits a weight
    config_path = model_files(metadata, ["config.json"]) / "config.json"
    if not config_path.exists():
        return None
    config = json.loads(config_path.read_text())
    if "text_config" in config:
        config = config["text_config"]
    hidden = config.get("hidden_size") or config.get("n_embd")
    layers = config.get("num_hidden_layers") or config.get("n_layer")
    vocab = config.get("vocab_size")
    if not (hidden and layers and vocab):
        return None
    inner = config.get("intermediate_size") or config.get("n_inner") or 4 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    parameters = embeddings + layers * (4 * hidden * hidden + 3 * hidden * inner)
    return parameters * BYTES_PER_PARAMETER


class Availability:
    """Tokenizers loaded alone, once per model, and whether each model may run here for example
    values; failures are remembered for RETRY_AFTER_S (an offline Hub is not asked again for
    every record)."""

    def __init__(self, max_model_bytes: int) -> None:
        self.max_model_bytes = max_model_bytes
        # by the whole registry entry: a model registered anew is looked at anew
        self._tokenizers: dict[ModelMetadata, object] = {}
        self._verdicts: dict[ModelMetadata, str | None] = {}
        self._failed: dict[tuple[ModelMetadata, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _remembered(self, key: tuple[ModelMetadata, str]) -> None:
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[1] < RETRY_AFTER_S:
            wait = RETRY_AFTER_S - (time.monotonic() - failed[1])
            raise LookupError(f"{failed[0]} (tried again in {wait:.0f} s)")

    def tokenizer(self, metadata: ModelMetadata):
        """The tokenizer; raises LookupError saying why not."""
        name = metadata.short_name
        with self._lock:
            if metadata in self._tokenizers:
                return self._tokenizers[metadata]
            self._remembered((metadata, "tokenizer"))
        try:
            tokenizer = load_tokenizer(metadata)
        except Exception as error:  # offline Hub, no such repo, a broken folder
            why = f"the tokenizer of model {name!r} is not available: {_reason(error)}"
            with self._lock:
                self._failed[(metadata, "tokenizer")] = (why, time.monotonic())
            raise LookupError(why) from None
        with self._lock:
            self._tokenizers[metadata] = tokenizer
        return tokenizer

    def why_not_run(self, metadata: ModelMetadata) -> str | None:
        """None where the model may run here for example values; else why not."""
        name = metadata.short_name
        with self._lock:
            if metadata in self._verdicts:
                return self._verdicts[metadata]
        try:
            size = estimated_bytes(metadata)
        except Exception as error:
            return f"the size of model {name!r} is not known: {_reason(error)}"
        if size is not None and size > self.max_model_bytes:
            verdict = (
                f"model {name!r} is about {size / 2**30:.1f} GB, over the "
                f"{self.max_model_bytes / 2**30:.1f} GB this server runs for example values "
                "(neurons serve --max-model-gb)"
            )
        else:
            verdict = None
        with self._lock:
            self._verdicts[metadata] = verdict
        return verdict


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:300]
