"""The one owner of a loaded model: a thread that runs every forward pass from a bounded queue.

Forward passes on one model must not overlap: the capture hooks are the model's own modules', so
a second pass would feed its tensors to the first one's hooks. Every user of a model (live
requests, example values of records, searches) submits its work here. Live requests waiting
together are answered in one pass (micro-batching); work whose caller has gone (its future
cancelled) is dropped before it runs.

Background work (a record's example values, one bounded pass per job) waits in a queue of its
own, taken only when no live request or search waits: a heavy record holds a live request up for
one pass at most, not for all the passes queued before it.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from activations.models.live import LiveRequest, ModelRunner


class ModelBusyError(RuntimeError):
    """The model's queue is full; the message says how full and what to do."""


# Every worker whose thread may still run, stopped and waited for when the interpreter exits
# (before it finalizes): a thread that frees torch tensors while the interpreter finalizes is
# ended inside torch's C++ and aborts the process ("terminate called without an active
# exception"; about one exit in three of `neurons explain` here, before this).
_LIVE: weakref.WeakSet = weakref.WeakSet()
EXIT_WAIT_S = 30.0


@atexit.register
def _stop_live() -> None:
    deadline = time.monotonic() + EXIT_WAIT_S
    for worker in list(_LIVE):
        worker.stop(max(0.01, deadline - time.monotonic()))


@dataclass
class _Job:
    run: Callable[..., Any] | None  # None: a live request, batched with its neighbours
    live: LiveRequest | None = None
    future: Future = field(default_factory=Future)
    background: bool = False


class ModelWorker:
    """A daemon thread (it never holds up the process's exit) and its bounded queue."""

    def __init__(
        self,
        runner: ModelRunner,
        queue_size: int = 64,
        micro_batch_size: int = 8,
        micro_batch_wait_s: float = 0.005,
        batch_tokens: int = ModelRunner.MAX_BATCH_TOKENS,
    ) -> None:
        self.runner = runner
        self.batch_tokens = batch_tokens
        self.queue_size = queue_size
        self.micro_batch_size = micro_batch_size
        self.micro_batch_wait_s = micro_batch_wait_s
        self._queue: deque[_Job] = deque()
        self._background: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._stopped = False
        self.batches_run = 0
        self.requests_run = 0
        self.dropped = 0  # jobs whose callers had gone before they ran
        self._thread = threading.Thread(
            target=self._work, name=f"model-{runner.metadata.short_name}", daemon=True
        )
        self._thread.start()
        _LIVE.add(self)

    def submit_live(self, request: LiveRequest) -> Future:
        """A live request; its future's result is its list of TextTrace."""
        return self._put(_Job(run=None, live=request))

    def submit(self, run: Callable[[ModelRunner], Any], background: bool = False) -> Future:
        """Any other work on the model: run(runner) on the model's thread; background work
        after every live request and search that waits."""
        return self._put(_Job(run=run, background=background))

    def waiting(self) -> int:
        with self._ready:
            return len(self._queue) + len(self._background)

    def stop(self, wait_s: float = 0.0) -> None:
        """Fail what waits and end the thread after the job it is running, waited for up to
        `wait_s` (a thread still alive when the interpreter exits may abort it: _stop_live)."""
        with self._ready:
            self._stopped = True
            jobs = [*self._queue, *self._background]
            self._queue, self._background = deque(), deque()
            self._ready.notify_all()
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ModelBusyError("the server is shutting down"))
        if wait_s > 0 and self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    def _put(self, job: _Job) -> Future:
        with self._ready:
            if self._stopped:
                raise ModelBusyError("the server is shutting down")
            if len(self._queue) + len(self._background) >= self.queue_size:
                name = self.runner.metadata.short_name
                raise ModelBusyError(
                    f"the queue of model {name!r} is full ({self.queue_size} waiting); "
                    "retry shortly"
                )
            (self._background if job.background else self._queue).append(job)
            self._ready.notify()
        return job.future

    def _next(self) -> list[_Job] | None:
        """The next job, or several live requests to answer in one pass."""
        with self._ready:
            while not self._queue and not self._background and not self._stopped:
                self._ready.wait()
            if self._stopped:
                return None
            first = (self._queue or self._background).popleft()
        if first.run is not None:
            return [first]
        time.sleep(self.micro_batch_wait_s)  # let neighbours arrive
        jobs, tokens = [first], first.live.n_tokens
        with self._ready:  # a batch of about one pass: a request queued next waits no longer
            while len(jobs) < self.micro_batch_size and self._queue and self._queue[0].run is None:
                more = self._queue[0].live.n_tokens
                if tokens + more > self.batch_tokens:
                    break
                jobs.append(self._queue.popleft())
                tokens += more
        return jobs

    def _work(self) -> None:
        while (jobs := self._next()) is not None:
            self._run(jobs)
            del jobs  # not held while the next is waited for (nor freed as the process exits)

    def _run(self, jobs: list[_Job]) -> None:
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        self.dropped += len(jobs) - len(live)
        if not live:
            return
        try:
            if live[0].run is not None:
                results = [live[0].run(self.runner)]
            else:
                results = self.runner.run([job.live for job in live])
                self.batches_run += 1
                self.requests_run += len(live)
        except BaseException as error:  # each caller gets the error; the thread goes on
            for job in live:
                job.future.set_exception(error)
            return
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)
