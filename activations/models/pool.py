"""Loaded models: one ModelRunner per registered model and the one worker thread that runs its
forward passes (worker.ModelWorker), both made on first use."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from activations.models.availability import Availability
from activations.models.live import LiveRequest, ModelRunner, TextTrace
from activations.models.tokens import Tokens
from activations.models.worker import ModelWorker
from registry import get_model

T = TypeVar("T")


class ModelPool:
    """Every user of a model (live requests, example values, searches) goes through its worker."""

    def __init__(
        self,
        device: str = "cpu",
        max_tokens: int = 1024,
        queue_size: int = 64,
        micro_batch_size: int = 8,
        micro_batch_wait_s: float = 0.005,
        max_model_bytes: int = 4 * 2**30,
    ):
        self.device = device
        self.max_tokens = max_tokens
        self.queue_size = queue_size
        self.micro_batch_size = micro_batch_size
        self.micro_batch_wait_s = micro_batch_wait_s
        self.availability = Availability(max_model_bytes)
        self._runners: dict[str, ModelRunner] = {}
        self._workers: dict[str, ModelWorker] = {}
        self._lock = threading.Lock()

    def get(self, short_name: str) -> ModelRunner:
        metadata = get_model(short_name)  # raises UnknownModelError listing the models
        with self._lock:
            runner = self._runners.get(short_name)
            if runner is None or runner.metadata != metadata:  # new, or registered anew
                runner = ModelRunner(metadata, self.device, self.max_tokens)
                self._runners[short_name] = runner
                old = self._workers.pop(short_name, None)
                if old is not None:
                    old.stop()
            return runner

    def tokens(self, short_name: str) -> Tokens:
        """The model's tokenizer with its BOS rule: the loaded model's, else loaded alone (no
        weights); raises LookupError saying why not."""
        runner = self.get(short_name)
        if runner.is_loaded:
            return runner.tokens
        tokenizer = self.availability.tokenizer(runner.metadata)
        return Tokens(tokenizer, runner.metadata.bos_token)

    def why_not_run(self, short_name: str) -> str | None:
        """None where the model may run for example values (loaded, or within the budget)."""
        runner = self.get(short_name)
        return None if runner.is_loaded else self.availability.why_not_run(runner.metadata)

    def worker(self, short_name: str) -> ModelWorker:
        runner = self.get(short_name)
        with self._lock:
            worker = self._workers.get(short_name)
            if worker is None or worker.runner is not runner:
                worker = ModelWorker(
                    runner, self.queue_size, self.micro_batch_size, self.micro_batch_wait_s
                )
                self._workers[short_name] = worker
            return worker

    async def live(self, short_name: str, request: LiveRequest) -> list[TextTrace]:
        """A live request, batched with others waiting for the same model."""
        return await asyncio.wrap_future(self.worker(short_name).submit_live(request))

    async def run(
        self, short_name: str, work: Callable[[ModelRunner], T], background: bool = False
    ) -> T:
        """work(runner) on the model's thread, after what waits before it; background work
        (keep each job to one pass) after every live request and search that waits."""
        return await asyncio.wrap_future(self.worker(short_name).submit(work, background))

    def loaded(self) -> list[str]:
        with self._lock:
            return [name for name, runner in self._runners.items() if runner.is_loaded]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            workers = list(self._workers.values())
        return {
            "batches": sum(w.batches_run for w in workers),
            "requests": sum(w.requests_run for w in workers),
            "dropped": sum(w.dropped for w in workers),
            "waiting": sum(w.waiting() for w in workers),
        }

    def stop(self, wait_s: float = 0.0) -> None:
        """Stop every worker (what waits fails; the job each runs is waited for, `wait_s` in
        all); the models stay loaded for a restart."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        deadline = time.monotonic() + wait_s
        for worker in workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
