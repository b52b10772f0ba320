"""Where explanations and simulations are computed, chosen in the registry or per call: in
process (any Hugging Face causal LM with a chat template; the embedded SmolLM2-135M-Instruct
by default, so that a fresh clone explains offline), or any OpenAI-compatible server
(openai_backend.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from activations.explanations.local import LocalLM
from activations.explanations.results import SequenceSimulation

T = TypeVar("T")
Runner = Callable[[Callable[[LocalLM], T]], Awaitable[T]]


class InProcessBackend:
    """A LocalLM, its work run by `run` (the server: on the model's own worker thread, after
    the live requests queued before it; elsewhere: a thread of its own)."""

    def __init__(self, model: str, run: Runner, seed: int = 0) -> None:
        self.model = model
        self.name = f"in-process {model}"
        self._run = run
        self._seed = seed

    async def complete(
        self, messages: list[dict[str, str]], n: int, max_tokens: int, temperature: float
    ) -> list[str]:
        seed = self._seed
        return await self._run(
            lambda lm: lm.generate(messages, n, max_tokens, temperature, 1.0, seed)
        )

    async def simulate(
        self, explanation: str, sequences: Sequence[Sequence[str]]
    ) -> list[SequenceSimulation]:
        return await self._run(lambda lm: lm.simulate(explanation, sequences))


class LocalModels:
    """LocalLMs made on first use from loaded (model, tokenizer) pairs, one per model."""

    def __init__(self) -> None:
        self._lms: dict[Any, LocalLM] = {}
        self._lock = threading.Lock()

    def of(self, key: Any, model, tokenizer, name: str, dtype: str | None = None) -> LocalLM:
        with self._lock:
            lm = self._lms.get(key)
            if lm is None or lm.source is not model:
                lm = self._lms[key] = LocalLM(model, tokenizer, name, dtype=dtype)
            return lm


def standalone_runner(model: str, device: str = "cpu") -> Runner:
    """For scripts and the command line: the registered model loaded once, its work run on
    a thread of its own (the event loop stays free for progress and Ctrl-C)."""
    from activations.models.loading import load_model
    from registry import get_model

    holder: dict[str, LocalLM] = {}
    lock = threading.Lock()

    def lm() -> LocalLM:
        with lock:
            if "lm" not in holder:
                loaded, tokenizer = load_model(get_model(model), device)
                holder["lm"] = LocalLM(loaded, tokenizer, model)
            return holder["lm"]

    async def run(work: Callable[[LocalLM], T]) -> T:
        return await asyncio.to_thread(lambda: work(lm()))

    return run
