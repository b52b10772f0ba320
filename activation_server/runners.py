"""The micro-batching queue in front of the loaded models (activations.models.pool).

Requests wait in a bounded queue; one worker takes up to `micro_batch_size` of them at a time
and runs them through one forward pass in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from activation_server.errors import ServerBusyError
from activation_server.settings import ServerSettings
from activations.models.live import LiveRequest, ModelRunner, TextTrace


@dataclass
class _Job:
    runner: ModelRunner
    request: LiveRequest
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MicroBatcher:
    """Bounded queue of live requests, answered in batches per model."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0
        self.requests_run = 0

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.settings.live_queue_size)
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def submit(self, runner: ModelRunner, request: LiveRequest) -> list[TextTrace]:
        if self._queue is None:
            self.start()
        job = _Job(runner, request)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ServerBusyError(
                f"the live-activation queue is full ({self.settings.live_queue_size} waiting); "
                "retry shortly"
            ) from None
        return await job.future

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            await asyncio.sleep(self.settings.micro_batch_wait_s)
            while len(jobs) < self.settings.micro_batch_size and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            by_runner: dict[int, list[_Job]] = {}
            for job in jobs:
                by_runner.setdefault(id(job.runner), []).append(job)
            for group in by_runner.values():
                await self._run_group(group)

    async def _run_group(self, group: list[_Job]) -> None:
        live = [job for job in group if not job.future.cancelled()]
        if not live:
            return
        runner = live[0].runner
        try:
            results = await asyncio.to_thread(runner.run, [job.request for job in live])
        except Exception as error:  # each request gets the error, the worker goes on
            for job in live:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.batches_run += 1
        self.requests_run += len(live)
        for job, result in zip(live, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)
