"""Tiny random-initialised models of real architectures, saved with a word-level tokenizer, and
random corpora of their words."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    OlmoConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
)

WORDS = [f"w{i}" for i in range(60)]


def word_tokenizer(adds_bos: bool = True) -> PreTrainedTokenizerFast:
    """Words w0..w59; with `adds_bos`, every text begins with [BOS] (as Llama's tokenizer does),
    else none (as OLMo's)."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", special_tokens=[("[BOS]", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]"
    )


def tiny_config(arch: str):
    common = dict(vocab_size=len(WORDS) + 3, pad_token_id=0, bos_token_id=2, eos_token_id=2)
    if arch == "llama":
        return LlamaConfig(
            hidden_size=32,
            intermediate_size=24,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **common,
        )
    if arch == "olmo":
        return OlmoConfig(
            hidden_size=32,
            intermediate_size=20,
            num_hidden_layers=3,
            num_attention_heads=4,
            hidden_act="silu",
            **common,
        )
    if arch == "phi3":  # a fused gate_up_proj
        return Phi3Config(
            hidden_size=32,
            intermediate_size=20,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **common,
        )
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_inner=28, **common)
    raise ValueError(arch)


def make_tiny_model(arch: str, folder: Path, seed: int = 0, adds_bos: bool = True) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch))
    with torch.no_grad():
        for site in _mlps(model):
            # exact zeros: neuron 0's gate is always 0, neuron 1's in is always 0
            if hasattr(site, "gate_proj"):
                site.gate_proj.weight[0].zero_()
                site.up_proj.weight[1].zero_()
            if hasattr(site, "gate_up_proj"):  # rows: gate, then in
                n = site.gate_up_proj.weight.shape[0] // 2
                site.gate_up_proj.weight[0].zero_()
                site.gate_up_proj.weight[n + 1].zero_()
    model.save_pretrained(folder)
    word_tokenizer(adds_bos).save_pretrained(folder)
    return folder


def _mlps(model):
    return [m for _, m in model.named_modules() if hasattr(m, "down_proj") or hasattr(m, "c_proj")]


def random_documents(n: int, seed: int = 0, max_words: int = 23) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, max_words))) for _ in range(n)]


def write_jsonl(path: Path, documents: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    return path
