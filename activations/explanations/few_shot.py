"""Few-shot examples of neuron-explainer's prompts, written for this project: short, so that a
small model on a CPU reads them fast. Each is a neuron's records (tokens and activations), its
explanation and, for simulation prompts, the index of the first token whose activation is shown
(tokens before it read "unknown": the model learns that an "unknown" line may be followed by a
number, which is what lets one pass read every token's prediction)."""

from __future__ import annotations

from dataclasses import dataclass

from activations.records.tdb_json import ActivationRecord


@dataclass(frozen=True)
class Example:
    records: tuple[ActivationRecord, ...]
    explanation: str
    first_revealed: tuple[int, ...]


def _record(pairs: list[tuple[str, float]]) -> ActivationRecord:
    return ActivationRecord(tokens=[t for t, _ in pairs], activations=[a for _, a in pairs])


EXAMPLES: tuple[Example, ...] = (
    Example(
        records=(
            _record(
                [
                    (" The", 0.0),
                    (" river", 6.1),
                    (" flowed", 1.2),
                    (" past", 0.0),
                    (" the", 0.0),
                    (" mill", 0.0),
                    (" into", 0.0),
                    (" the", 0.0),
                    (" sea", 7.4),
                    (".", 0.0),
                ]
            ),
            _record(
                [
                    (" She", 0.0),
                    (" swam", 2.9),
                    (" across", 0.0),
                    (" the", 0.0),
                    (" lake", 6.8),
                    (" in", 0.0),
                    (" the", 0.0),
                    (" rain", 4.0),
                ]
            ),
        ),
        explanation="words about bodies of water and water itself",
        first_revealed=(4, 2),
    ),
    Example(
        records=(
            _record(
                [
                    (" I", 0.0),
                    (" do", 0.0),
                    (" not", 8.3),
                    (" think", 0.4),
                    (" it", 0.0),
                    ("'s", 0.0),
                    (" never", 7.5),
                    (" too", 0.0),
                    (" late", 0.0),
                ]
            ),
            _record(
                [
                    (" He", 0.0),
                    (" could", 0.0),
                    ("n't", 8.0),
                    (" find", 0.0),
                    (" any", 0.0),
                    (" key", 0.0),
                    (",", 0.0),
                    (" nor", 6.2),
                    (" a", 0.0),
                    (" door", 0.0),
                ]
            ),
        ),
        explanation="negations, such as not, never and nor",
        first_revealed=(3, 5),
    ),
)
