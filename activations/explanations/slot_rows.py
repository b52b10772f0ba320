"""The one pass that simulates a batch of all-at-once prompts: what the rows hold, where each
token sits and what it may see.

The prompts of one explanation share their beginning (the system message, the few-shot examples,
the explanation itself) and differ only in the listed tokens. The shared beginning is run once,
for one row, and its cache repeated; each row then holds only its prompt's own tail. Where the
tokenizer writes "10" as "1" then "0", P("0" | "1") at every slot is read in the same pass: a
"1" per slot is appended to its row, placed at the slot's position and seeing only what
precedes the slot (and itself), and no token sees it — as if "1" stood where "unknown" stands,
without a second pass over the cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def shared_length(batch: Sequence[tuple[list[int], list[int]]], at_least: int) -> int:
    """How many first ids every prompt shares, ending before the first slot's predicting
    token (so that every slot is read from a row's own tail), and not less than `at_least`
    (the kept cache's length)."""
    prompts = [ids for ids, _ in batch]
    common = 0
    for column in zip(*prompts, strict=False):
        if any(i != column[0] for i in column):
            break
        common += 1
    first = min((s for _, slots in batch for s in slots if s >= 0), default=common + 1)
    return max(at_least, min(common, first - 1))


@dataclass
class SlotRows:
    """The rows of the pass after the shared beginning, and where to read each slot."""

    ids: torch.Tensor
    """[rows, length]: each prompt's tail, then one "1" per slot where "10" is two tokens."""
    positions: torch.Tensor
    """[rows, length]: each token's position in its whole prompt."""
    allowed: torch.Tensor
    """[rows, 1, length, shared + length]: which keys each token sees."""
    before: list[torch.Tensor]
    """Per prompt, each slot's predicting token (the one before it) in its row."""
    ones: list[torch.Tensor]
    """Per prompt, each slot's appended "1" in its row (empty without them)."""

    def bias(self, dtype: torch.dtype) -> torch.Tensor:
        """The additive attention mask: 0 where a key is seen, the dtype's minimum elsewhere."""
        out = torch.zeros(self.allowed.shape, dtype=dtype)
        return out.masked_fill_(~self.allowed, torch.finfo(dtype).min)


def slot_rows(
    batch: Sequence[tuple[list[int], list[int]]], shared: int, one: int | None, pad: int
) -> SlotRows:
    """The rows for prompts whose first `shared` ids are already in the cache. A slot the
    tokenizer merged (-1), or one inside the shared beginning, is read at the row's first
    token (its value is not used)."""
    slots = [[max(s, shared + 1) for s in s_list] for _, s_list in batch]
    tails = [ids[shared:] for ids, _ in batch]
    extra = [len(s) if one is not None else 0 for s in slots]
    length = max(1, *(len(t) + e for t, e in zip(tails, extra, strict=True)))
    n = len(batch)
    ids = torch.full((n, length), pad, dtype=torch.long)
    positions = torch.zeros((n, length), dtype=torch.long)
    is_tail = torch.zeros((n, length), dtype=torch.bool)
    before, ones = [], []
    for b, (tail, s, e) in enumerate(zip(tails, slots, extra, strict=True)):
        ids[b, : len(tail)] = torch.tensor(tail, dtype=torch.long)
        positions[b, : len(tail)] = shared + torch.arange(len(tail))
        is_tail[b, : len(tail)] = True
        before.append(torch.tensor(s, dtype=torch.long) - 1 - shared)
        if e:
            ids[b, len(tail) : len(tail) + e] = one
            positions[b, len(tail) : len(tail) + e] = torch.tensor(s)
        ones.append(len(tail) + torch.arange(e))
    # a key of the row is seen if it is a tail token at an earlier position, or the token itself
    earlier = positions[:, None, :] < positions[:, :, None]
    own = is_tail[:, None, :] & earlier | torch.eye(length, dtype=torch.bool)[None]
    seen_shared = torch.ones((n, length, shared), dtype=torch.bool)
    allowed = torch.cat([seen_shared, own], dim=2)[:, None]
    return SlotRows(ids, positions, allowed, before, ones)
