"""Explain and score one target (a neuron's positive activations, or one GLU quadrant's) as
neuron-explainer does: its top records split into interleaved train / calibration / valid /
test parts (and its random records into calibration / valid / test), the explainer shown the
train records, each candidate simulated on the valid top and random records and scored, the
best first."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from activations.explanations.errors import BackendError, ExplanationError, NeverActiveError
from activations.explanations.prompts import clean_explanation, explanation_messages
from activations.explanations.results import ScoredExplanation, SequenceSimulation
from activations.explanations.scoring import score_simulations
from activations.records.tdb_json import ActivationRecord

MAX_EXPLANATION_CHARS = 500
OVERALL = None
"""The target of a neuron's overall positive activations (no quadrant)."""


class Backend(Protocol):
    """An explainer and simulator model (in-process or behind an OpenAI-compatible server)."""

    name: str
    """Says which model (and how) explained and scored: shown with every result."""

    def complete(
        self, messages: list[dict[str, str]], n: int, max_tokens: int, temperature: float
    ) -> Awaitable[list[str]]: ...

    def simulate(
        self, explanation: str, sequences: Sequence[Sequence[str]]
    ) -> Awaitable[list[SequenceSimulation]]: ...


@dataclass
class Target:
    """What one explanation is of: top records (values oriented so that what is explained is
    positive) and random ones on the same orientation."""

    quadrant: str | None
    top: list[ActivationRecord]
    random: list[ActivationRecord] = field(default_factory=list)

    @property
    def max_activation(self) -> float:
        return max((a for r in self.top for a in r.activations), default=-math.inf)


def _interleaved(records: list, splits: int, which: int, per_split: int | None) -> list:
    """neuron-explainer's get_slices_for_splits: split `which` of `splits` interleaved parts
    of `per_split` records (len // splits where None). Fewer records than parts: every other
    record (train the even ones, valid the odd), so that a small record still scores."""
    if len(records) < splits:
        if len(records) == 1:
            return list(records)
        return records[(which % 2) :: 2]
    n = per_split if per_split is not None else len(records) // splits
    return records[which : n * splits : splits]


def train_records(target: Target, per_split: int | None = None) -> list[ActivationRecord]:
    return _interleaved(target.top, 4, 0, per_split)


def valid_records(target: Target, per_split: int | None = None) -> list[ActivationRecord]:
    """The valid top records and as many random ones (neuron-explainer's 1:1)."""
    top = _interleaved(target.top, 4, 2 if len(target.top) >= 4 else 1, per_split)
    random = _interleaved(target.random, 3, 1, per_split) if len(target.random) >= 3 else []
    return top + random[: len(top)] if random else top


def check_explanation(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ExplanationError("the explanation is empty: give the text to score")
    if len(text) > MAX_EXPLANATION_CHARS:
        raise ExplanationError(
            f"the explanation is {len(text)} characters long: at most {MAX_EXPLANATION_CHARS}"
        )
    return text


def check_active(target: Target, what: str) -> None:
    if not target.top or target.max_activation <= 0:
        raise NeverActiveError(f"{what} is never active on the dataset: nothing to explain")


async def score(
    backend: Backend,
    target: Target,
    explanation: str,
    max_sequences: int | None = None,
    per_split: int | None = None,
) -> ScoredExplanation:
    """Simulate the explanation on the valid records and score it."""
    explanation = check_explanation(explanation)
    records = valid_records(target, per_split)
    if max_sequences is not None:
        records = records[:max_sequences]
    simulations = await backend.simulate(explanation, [r.tokens for r in records])
    scored = score_simulations(simulations, [r.activations for r in records])
    return ScoredExplanation(explanation=explanation, scored_simulation=scored)


def _rank(scored: ScoredExplanation) -> float:
    value = scored.get_preferred_score()
    return -math.inf if value is None else value


async def explain(
    backend: Backend,
    target: Target,
    what: str,
    candidates: int = 3,
    max_tokens: int = 40,
    temperature: float = 1.0,
    max_sequences: int | None = None,
    per_split: int | None = None,
) -> list[ScoredExplanation]:
    """Candidates from the explainer, each scored; best first (distinct texts only)."""
    check_active(target, what)
    messages = explanation_messages(train_records(target, per_split))
    completions = await backend.complete(messages, candidates, max_tokens, temperature)
    texts = []
    for completion in completions:
        text = clean_explanation(completion)[:MAX_EXPLANATION_CHARS]
        if text and text not in texts:
            texts.append(text)
    if not texts:
        raise BackendError(f"{backend.name} wrote no explanation in {candidates} samples")
    scored = [await score(backend, target, t, max_sequences, per_split) for t in texts]
    return sorted(scored, key=_rank, reverse=True)


def top_tokens_explanation(target: Target, most: int = 5) -> str:
    """neuron-explainer's "top tokens" baseline: the tokens where the train records peak,
    most frequent first, as an explanation to score the same way as a model's."""
    counts: dict[str, int] = {}
    for record in train_records(target):
        if record.activations:
            peak = max(range(len(record.activations)), key=record.activations.__getitem__)
            token = record.tokens[peak]
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts, key=lambda t: -counts[t])[:most]
    return "the tokens " + ", ".join(f'"{t.strip() or t}"' for t in ranked)
