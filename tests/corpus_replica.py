"""A replica of the corpus the published OLMo records point into (sjgerstner/dolma-small), written
as its authors wrote it: `datasets` Parquet shards with a `text` column and the `input_ids` the
records were made from (`<|endoftext|>` first, as their BOS), and a tokenizer of the same kind
(OLMo's adds no BOS). Every document's text begins `document <its index>`, so that an example
shown with another document's text is seen at once."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

from tests.tiny import tiny_config

BOS = "<|endoftext|>"
DIGITS = [str(d) for d in range(10)]
WORDS = [a + b for a in "abcdef" for b in "klmnopqrst"]  # 60 words without digits


def olmo_like_tokenizer():
    """60 words, `document`, single digits, and <|endoftext|>; adds no BOS itself."""
    from transformers import PreTrainedTokenizerFast

    names = ["[PAD]", "[UNK]", BOS, "document", *DIGITS, *WORDS]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(names)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token=BOS
    )


def document_text(index: int, rng: random.Random) -> str:
    return f"document {index} " + " ".join(rng.choices(WORDS, k=rng.randint(3, 600)))


def write_corpus(folder: Path, n_documents: int, shards: int = 3, rows_per_group: int = 40):
    """data/train-*.parquet with `text` and `input_ids`; returns the texts."""
    from datasets import Dataset, Features, List, Value

    tokenizer = olmo_like_tokenizer()
    rng = random.Random(7)
    texts = [document_text(i, rng) for i in range(n_documents)]
    bos = tokenizer.convert_tokens_to_ids(BOS)
    ids = [[bos, *tokenizer(t).input_ids] for t in texts]
    features = Features({"text": Value("string"), "input_ids": List(Value("int32"))})
    dataset = Dataset.from_dict({"text": texts, "input_ids": ids}, features=features)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for index in range(shards):
        shard = dataset.shard(num_shards=shards, index=index, contiguous=True)
        path = folder / "data" / f"train-{index:05d}-of-{shards:05d}.parquet"
        shard.to_parquet(str(path), batch_size=rows_per_group)
    return texts


def write_tokenizer_repo(folder: Path) -> Path:
    """A model repo with the tokenizer and the config of OLMo-7B-0424's size, and no weights."""
    olmo_like_tokenizer().save_pretrained(folder)
    config = {
        "model_type": "olmo",
        "architectures": ["OlmoForCausalLM"],
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "vocab_size": 50304,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def write_tiny_olmo(folder: Path, seed: int = 0) -> Path:
    """A tiny random OLMo with that tokenizer: a model that runs anywhere."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    tokenizer = olmo_like_tokenizer()
    config = tiny_config("olmo")
    config.vocab_size = len(tokenizer)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
