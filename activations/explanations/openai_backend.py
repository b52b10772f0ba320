"""Any OpenAI-compatible server as explainer and simulator (vLLM, llama.cpp's server, Ollama,
OpenAI), through the `openai` package: the server's address, the key from an environment
variable, the model's name; at most `max_concurrency` requests at a time, the client's retries
with backoff, a timeout for each request.

Explanations come from its chat endpoint. Simulations, where the server's completions endpoint
echoes the prompt with its tokens' top logprobs, are neuron-explainer's all-at-once ones: the
prompt's text, and each slot's distribution from the logprobs of the token at the slot's offset
(values "0".."10" renormalised). Without logprobs, its logprob-free simulator: the model repeats
the tokens with a value each (temperature 0), and no distribution is kept."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence

import openai

from activations.explanations.errors import BackendError, BackendTimeoutError
from activations.explanations.few_shot import EXAMPLES
from activations.explanations.prompts import (
    DIGITS,
    EXPLANATION_PREFIX,
    max_activation,
    normalize,
    plain_text,
    simulation_prompt,
)
from activations.explanations.results import SequenceSimulation
from registry.explanations import ExplainerMetadata

END = "༗"  # neuron-explainer's end-of-line mark in logprob-free prompts


class OpenAIBackend:
    def __init__(self, metadata: ExplainerMetadata) -> None:
        self.metadata = metadata
        simulator = "echo+logprobs" if metadata.logprobs else "logprob-free"
        self.name = f"{metadata.model} at {metadata.base_url} ({simulator} simulator)"
        key = os.environ.get(metadata.api_key_env, "") if metadata.api_key_env else ""
        self.client = openai.AsyncOpenAI(
            base_url=metadata.base_url,
            api_key=key or "none",
            timeout=metadata.timeout_s,
            max_retries=metadata.max_retries,
        )
        self._slots = asyncio.Semaphore(metadata.max_concurrency)

    async def _call(self, create, **kwargs):
        async with self._slots:
            try:
                return await create(model=self.metadata.model, **kwargs)
            except openai.APITimeoutError:
                raise BackendTimeoutError(
                    f"{self.name} did not answer within {self.metadata.timeout_s:g} s"
                ) from None
            except openai.APIConnectionError as error:
                raise BackendError(f"{self.name} cannot be reached: {error}") from None
            except openai.APIStatusError as error:
                detail = str(error)[:300]
                raise BackendError(f"{self.name} answered {error.status_code}: {detail}") from None

    async def complete(
        self, messages: list[dict[str, str]], n: int, max_tokens: int, temperature: float
    ) -> list[str]:
        create = self.client.chat.completions.create
        answer = await self._call(
            create, messages=messages, n=n, max_tokens=max_tokens, temperature=temperature
        )
        texts = [c.message.content or "" for c in answer.choices]
        if len(texts) < n:  # servers that ignore n: one request per further sample
            more = await asyncio.gather(
                *(
                    self._call(
                        create, messages=messages, max_tokens=max_tokens, temperature=temperature
                    )
                    for _ in range(n - len(texts))
                )
            )
            texts += [m.choices[0].message.content or "" for m in more]
        return texts

    async def simulate(
        self, explanation: str, sequences: Sequence[Sequence[str]]
    ) -> list[SequenceSimulation]:
        one = self._echo if self.metadata.logprobs else self._logprob_free
        return list(await asyncio.gather(*(one(explanation, list(s)) for s in sequences)))

    async def _echo(self, explanation: str, tokens: list[str]) -> SequenceSimulation:
        prompt = simulation_prompt(explanation, tokens)
        text = plain_text(prompt.messages)
        base = len(text) - len(prompt.content)
        answer = await self._call(
            self.client.completions.create,
            prompt=text,
            max_tokens=1,
            echo=True,
            logprobs=15,
            temperature=0,
        )
        logprobs = answer.choices[0].logprobs
        if logprobs is None or not logprobs.text_offset:
            raise BackendError(
                f"{self.name} gave no echoed logprobs: register it with logprobs=False for the "
                "logprob-free simulator"
            )
        at = {offset: i for i, offset in enumerate(logprobs.text_offset)}
        values, probabilities, expected = [], [], []
        for slot in prompt.slots:
            i = at.get(base + slot)
            top = (logprobs.top_logprobs or [])[i] if i is not None else None
            found = {int(t): math.exp(p) for t, p in (top or {}).items() if t in DIGITS}
            total = sum(found.values())
            if not total:  # the slot merged into another token, or no value among the top
                values.append([])
                probabilities.append([])
                expected.append(0.0)
                continue
            ordered = sorted(found)
            values.append([float(v) for v in ordered])
            probabilities.append([found[v] / total for v in ordered])
            expected.append(sum(v * found[v] for v in ordered) / total)
        return SequenceSimulation(
            tokens=tokens,
            expected_activations=expected,
            distribution_values=values,
            distribution_probabilities=probabilities,
        )

    async def _logprob_free(self, explanation: str, tokens: list[str]) -> SequenceSimulation:
        answer = await self._call(
            self.client.chat.completions.create,
            messages=logprob_free_messages(explanation, tokens),
            max_tokens=16 + 8 * len(tokens),
            temperature=0,
        )
        predicted = parse_logprob_free(answer.choices[0].message.content or "", tokens)
        return SequenceSimulation(tokens=tokens, expected_activations=[float(v) for v in predicted])


def _lines(tokens: Sequence[str], values: Sequence[int] | None = None) -> str:
    if values is None:
        return "".join(f"{t}\t{END}\n" for t in tokens)
    return "".join(f"{t}\t{v}{END}\n" for t, v in zip(tokens, values, strict=True))


def logprob_free_messages(explanation: str, tokens: Sequence[str]) -> list[dict[str, str]]:
    """neuron-explainer's logprob-free simulation prompt (its chat form)."""
    messages = [
        {
            "role": "system",
            "content": "We're studying neurons in a neural network. Each neuron looks for some "
            "particular thing in a short document. Look at  an explanation of what the neuron "
            "does, and try to predict its activations on a particular token.\n\nThe activation "
            "format is token<tab>activation, and activations range from 0 to 10. Most "
            "activations will be 0.\nFor each sequence, you will see the tokens in the sequence "
            "where the activations are left blank. You will print the exact same tokens "
            "verbatim, but with the activations filled in according to the explanation.\n",
        }
    ]
    for i, example in enumerate(EXAMPLES):
        top = max_activation(example.records)
        record = example.records[0]
        messages.append(
            {
                "role": "user",
                "content": f"Neuron {i + 1}\nExplanation of neuron {i + 1} behavior: "
                f"{EXPLANATION_PREFIX} {example.explanation}\n\nSequence 1 Tokens without "
                f"Activations:\n{_lines(record.tokens)}\n\nSequence 1 Tokens with Activations:\n",
            }
        )
        values = normalize(record.activations, top)
        messages.append({"role": "assistant", "content": f"{_lines(record.tokens, values)}\n\n"})
    n = len(EXAMPLES) + 1
    messages.append(
        {
            "role": "user",
            "content": f"Neuron {n}\nExplanation of neuron {n} behavior: {EXPLANATION_PREFIX} "
            f"{explanation}\n\nSequence 1 Tokens without Activations:\n{_lines(tokens)}\n\n"
            "Sequence 1 Tokens with Activations:\n",
        }
    )
    return messages


def parse_logprob_free(completion: str, tokens: Sequence[str]) -> list[int]:
    """The values the model wrote, one per token; all 0 where it did not repeat the tokens
    faithfully, 0 for a value that is not 0-10 (neuron-explainer's rules)."""
    zeros = [0] * len(tokens)
    lines = completion.strip("\n").split(f"{END}\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{tokens[0]}\t")), None)
    if start is None or len(lines) - start < len(tokens):
        return zeros
    values = []
    for token, line in zip(tokens, lines[start : start + len(tokens)], strict=True):
        if not line.startswith(f"{token}\t"):
            return zeros
        value = line.split("\t")[1].rstrip(END)
        values.append(int(value) if value in DIGITS else 0)
    return values
