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


def words(count: int) -> list[str]:
    """`count` distinct words of letters (WORDS first): a vocabulary as large as a real one's
    makes token ids as hard to compress as real ones."""
    out, n = list(WORDS[:count]), 0
    while len(out) < count:
        word, m = "", n
        while True:
            word, m = "abcdefghijklmnopqrstuvwxyz"[m % 26] + word, m // 26
            if not m:
                break
        if len(word) > 2:
            out.append(word)
        n += 1
    return out


def olmo_like_tokenizer(vocabulary: int = len(WORDS)):
    """Words, `document`, single digits, and <|endoftext|>; adds no BOS itself."""
    from transformers import PreTrainedTokenizerFast

    names = ["[PAD]", "[UNK]", BOS, "document", *DIGITS, *words(vocabulary)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(names)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token=BOS
    )


def document_text(
    index: int, rng: random.Random, max_words: int = 600, vocabulary: list[str] = WORDS
) -> str:
    return f"document {index} " + " ".join(rng.choices(vocabulary, k=rng.randint(3, max_words)))


def write_corpus(
    folder: Path,
    n_documents: int,
    shards: int = 3,
    rows_per_group: int | None = 40,
    max_words: int = 600,
    attention_mask: bool = False,
    vocabulary: int = len(WORDS),
):
    """data/train-*.parquet with `text` and `input_ids` (and `attention_mask`, as dolma-small
    has); returns the texts. rows_per_group None: the library's choice."""
    from datasets import Dataset, Features, List, Value

    tokenizer = olmo_like_tokenizer(vocabulary)
    rng, chosen = random.Random(7), words(vocabulary)
    texts = [document_text(i, rng, max_words, chosen) for i in range(n_documents)]
    bos = tokenizer.convert_tokens_to_ids(BOS)
    ids = [[bos, *one] for one in tokenizer(texts).input_ids]
    columns = {"text": texts, "input_ids": ids}
    kinds = {"text": Value("string"), "input_ids": List(Value("int32"))}
    if attention_mask:
        columns["attention_mask"] = [[1] * len(one) for one in ids]
        kinds["attention_mask"] = List(Value("int8"))
    dataset = Dataset.from_dict(columns, features=Features(kinds))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for index in range(shards):
        shard = dataset.shard(num_shards=shards, index=index, contiguous=True)
        path = folder / "data" / f"train-{index:05d}-of-{shards:05d}.parquet"
        shard.to_parquet(str(path), batch_size=rows_per_group)
    return texts


def write_tokenizer_repo(folder: Path, vocabulary: int = len(WORDS)) -> Path:
    """A model repo with the tokenizer and the config of OLMo-7B-0424's size, and no weights."""
    olmo_like_tokenizer(vocabulary).save_pretrained(folder)
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
