"""Prompt search: the neurons of every layer that fire most on a text, or at one of its tokens,
from one forward pass (the collation's capture hooks on every MLP).

Each layer is reduced as it runs to its own `top` candidates (a neuron's largest |value| over
the text, or its |value| at the token), so the pass holds one layer's values at a time; the
global top is then among those candidates, since a layer's k-th best bounds all of its others.
"""

from __future__ import annotations

import torch

from activations.models.live import LiveRequest, ModelRunner
from activations.search.answers import PromptHit, PromptSearchResult, SearchError
from registry.vocabulary import DST_TO_HOOK, GATE_HOOK, IN_HOOK, DerivedScalarType, quadrant_of


def search_prompt(
    runner: ModelRunner,
    text: str,
    dst: DerivedScalarType = DerivedScalarType.MLP_POST_ACT,
    token_index: int | None = None,
    top: int = 20,
    skip_first: bool = False,
) -> PromptSearchResult:
    """The `top` neurons of the model by |value| on the text (at `token_index`, where given;
    negative counts from the end), strongest first, ties to the lower layer and neuron;
    `skip_first` leaves the text's first token out of a whole-text search (many models park
    values thousands of times larger there, an attention sink, which would hide the rest). Runs
    on the caller's thread: the server calls it on the model's worker."""
    if top < 1:
        raise SearchError(f"top must be at least 1, not {top}")
    dst = DerivedScalarType(dst)
    runner.validate(LiveRequest(texts=(), layer=0, dst=dst))  # a type the model has
    ids = runner.tokens.encode(text, runner.max_tokens)
    if not ids:
        raise SearchError("the text has no tokens: give at least one character")
    at = _token_index(token_index, len(ids))
    first = 1 if skip_first and at is None and len(ids) > 1 else 0
    hook = DST_TO_HOOK[dst]
    found: list[tuple[float, int, int, float, int, float | None, float | None]] = []

    def visit(layer: int, values: dict[str, torch.Tensor]) -> None:
        chosen = values[hook][0]  # [T, N]
        if at is None:
            score, position = chosen[first:].abs().max(dim=0)
            position = position + first
        else:
            score = chosen[at].abs()
            position = torch.full_like(score, at, dtype=torch.long)
        best = score.topk(min(top, score.shape[0])).indices
        where = position[best]
        value = chosen[where, best].tolist()
        gate, in_ = values.get(GATE_HOOK), values.get(IN_HOOK)
        g = gate[0][where, best].tolist() if gate is not None else [None] * len(value)
        u = in_[0][where, best].tolist() if in_ is not None else [None] * len(value)
        for n, p, v, a, b in zip(best.tolist(), where.tolist(), value, g, u, strict=True):
            found.append((abs(v), layer, n, v, p, a, b))

    runner.visit_layers([ids], visit)
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    tokens = runner.tokens.decode_each(ids)
    hits = [
        PromptHit(
            layer=layer,
            neuron=neuron,
            value=value,
            position=p,
            token=tokens[p],
            quadrant=None if g is None else quadrant_of(g, u),
        )  # fmt: skip
        for _, layer, neuron, value, p, g, u in found[:top]
    ]
    return PromptSearchResult(
        model=runner.metadata.short_name, dst=dst, hook=hook, tokens=tokens, token_ids=ids,
        token_index=at, neurons=hits,
    )  # fmt: skip


def _token_index(token_index: int | None, length: int) -> int | None:
    if token_index is None:
        return None
    if not -length <= token_index < length:
        raise SearchError(
            f"tokenIndex {token_index} is out of range: the text has {length} tokens "
            f"(valid: 0-{length - 1}, or -{length} to -1 from the end)"
        )
    return token_index % length
