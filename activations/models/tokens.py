"""A model's tokenizer with its BOS rule: token ids of texts as the model's datasets were made.

Some datasets put a BOS token before every text that the model's tokenizer does not add (the
published OLMo-7B files: <|endoftext|>); the model's registry entry says which (bos_token), and
every text this project runs through the model gets it: collation, live runs, example text.
"""

from __future__ import annotations

import torch


class Tokens:
    def __init__(self, tokenizer, bos_token: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.bos_id: int | None = None
        if bos_token:
            bos_id = tokenizer.convert_tokens_to_ids(bos_token)
            if bos_id is None or bos_id == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer has no token {bos_token!r} to begin texts with")
            own = tokenizer("a").input_ids
            if not own or own[0] != bos_id:  # only where the tokenizer adds none itself
                self.bos_id = bos_id

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """The ids of one text, BOS rule applied, at most max_length of them."""
        room = None if max_length is None else max_length - (self.bos_id is not None)
        ids = self.tokenizer(text, truncation=room is not None, max_length=room).input_ids
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def batch(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded input ids and attention mask of several texts."""
        id_lists = [self.encode(t, max_length) for t in texts]
        return pad(id_lists, self.tokenizer.pad_token_id or 0)

    def decode_each(self, ids: list[int]) -> list[str]:
        """One string per token."""
        return [self.tokenizer.decode([i]) for i in ids]


def pad(id_lists: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(ids) for ids in id_lists), default=0)
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in id_lists])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in id_lists])
    return input_ids.reshape(len(id_lists), width), mask.reshape(len(id_lists), width)
