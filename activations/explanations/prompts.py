"""neuron-explainer's prompts, as chat messages: its token/activation-pair explainer prompt and
its "all at once" simulation prompt, with its 0-10 normalisation (activation_records.py).

The text of each message is neuron-explainer's, so that a chat model reads what its explainer
and simulator models read; where a backend takes plain text (an OpenAI-compatible completions
endpoint), the messages are joined as its "none" prompt format joins them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from activations.explanations.few_shot import EXAMPLES
from activations.records.tdb_json import ActivationRecord

EXPLANATION_PREFIX = "the main thing this neuron does is find"
UNKNOWN = "unknown"
MAX_NORMALIZED = 10
DIGITS = tuple(str(i) for i in range(MAX_NORMALIZED + 1))
"""The values a simulator may predict, "0" to "10"."""

EXPLAINER_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in "
    "a short document. Look at the parts of the document the neuron activates for and summarize "
    "in a single sentence what the neuron is looking for. Don't list examples of words.\n\nThe "
    "activation format is token<tab>activation. Activation values range from 0 to 10. A neuron "
    "finding what it's looking for is represented by a non-zero activation value. The higher the "
    "activation value, the stronger the match."
)
SIMULATOR_SYSTEM = (
    "We're studying neurons in a neural network.\nEach neuron looks for some particular thing in "
    "a short document.\nLook at summary of what the neuron does, and try to predict how it will "
    "fire on each token.\n\nThe activation format is token<tab>activation, activations go from 0 "
    'to 10, "unknown" indicates an unknown activation. Most activations will be 0.\n'
)


def max_activation(records: Sequence[ActivationRecord]) -> float:
    """The largest positive activation (values below 0 count as the resting state, 0)."""
    return max((max(0.0, a) for r in records for a in r.activations), default=0.0)


def normalize(activations: Sequence[float], top: float) -> list[int]:
    """Activations as integers 0-10 of `top`, floored, as neuron-explainer shows them."""
    if top <= 0:
        return [0 for _ in activations]
    return [min(MAX_NORMALIZED, math.floor(10 * max(0.0, a) / top)) for a in activations]


def format_records(
    records: Sequence[ActivationRecord],
    top: float,
    omit_zeros: bool = False,
    first_revealed: Sequence[int] | None = None,
) -> str:
    blocks = []
    for i, record in enumerate(records):
        values = normalize(record.activations, top)
        pairs = list(zip(record.tokens, values, strict=True))
        if omit_zeros:
            pairs = [(t, v) for t, v in pairs if v > 0]
        start = first_revealed[i] if first_revealed else 0
        blocks.append(
            "\n".join(f"{t}\t{UNKNOWN if j < start else v}" for j, (t, v) in enumerate(pairs))
        )
    return "\n<start>\n" + "\n<end>\n<start>\n".join(blocks) + "\n<end>\n"


def _nonzero_share(records: Sequence[ActivationRecord], top: float) -> float:
    values = [v for r in records for v in normalize(r.activations, top)]
    return sum(v != 0 for v in values) / max(1, len(values))


def _explainer_user(index: int, records: Sequence[ActivationRecord]) -> str:
    top = max_activation(records)
    text = f"\n\nNeuron {index + 1}\nActivations:{format_records(records, top)}"
    if _nonzero_share(records, top) < 0.2:
        text += "\nSame activations, but with all zeros filtered out:" + format_records(
            records, top, omit_zeros=True
        )
    return text + f"\nExplanation of neuron {index + 1} behavior: {EXPLANATION_PREFIX}"


def explanation_messages(records: Sequence[ActivationRecord]) -> list[dict[str, str]]:
    """neuron-explainer's token/activation-pair prompt (its chat form: the prefix "the main
    thing this neuron does is find" ends each user message, the answer completes it)."""
    messages = [{"role": "system", "content": EXPLAINER_SYSTEM}]
    for i, example in enumerate(EXAMPLES):
        messages.append({"role": "user", "content": _explainer_user(i, example.records)})
        messages.append({"role": "assistant", "content": f" {example.explanation}."})
    messages.append({"role": "user", "content": _explainer_user(len(EXAMPLES), records)})
    return messages


def clean_explanation(completion: str) -> str:
    """A completion as an explanation: its first line, without the prefix if repeated, without
    a final period."""
    text = completion.strip().split("\n")[0].strip()
    if text.lower().startswith(EXPLANATION_PREFIX):
        text = text[len(EXPLANATION_PREFIX) :].strip()
    return text[:-1].rstrip() if text.endswith(".") else text


@dataclass(frozen=True)
class SimulationPrompt:
    """Chat messages whose last (an assistant turn to continue) lists the tokens, each with an
    "unknown" slot; `slots` are the character offsets of those slots in its content."""

    messages: list[dict[str, str]]
    slots: list[int]

    @property
    def content(self) -> str:
        return self.messages[-1]["content"]


def simulation_prompt(explanation: str, tokens: Sequence[str]) -> SimulationPrompt:
    """neuron-explainer's all-at-once simulation prompt for one sequence."""
    messages = [{"role": "system", "content": SIMULATOR_SYSTEM}]
    for i, example in enumerate(EXAMPLES):
        messages.append(
            {
                "role": "user",
                "content": f"\n\nNeuron {i + 1}\nExplanation of neuron {i + 1} behavior: "
                f"{EXPLANATION_PREFIX} {example.explanation}",
            }
        )
        records = format_records(
            example.records, max_activation(example.records), first_revealed=example.first_revealed
        )
        messages.append({"role": "assistant", "content": f"\nActivations: {records}\n"})
    n = len(EXAMPLES) + 1
    messages.append(
        {
            "role": "user",
            "content": f"\n\nNeuron {n}\nExplanation of neuron {n} behavior: "
            f"{EXPLANATION_PREFIX} {explanation.strip()}",
        }
    )
    content, slots = "\nActivations: \n<start>\n", []
    for i, token in enumerate(tokens):
        content += f"{token}\t"
        slots.append(len(content))
        content += UNKNOWN + ("\n" if i + 1 < len(tokens) else "")
    content += "\n<end>\n"
    messages.append({"role": "assistant", "content": content})
    return SimulationPrompt(messages, slots)


def plain_text(messages: Sequence[dict[str, str]]) -> str:
    """Messages joined as neuron-explainer's "none" prompt format joins them."""
    return "".join(m["content"] for m in messages)
