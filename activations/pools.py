"""Bounded pools of daemon threads, one per kind of blocking work, awaited with a deadline.

Kinds are kept apart so that one cannot starve another: reads of remote datasets that hang
fill only their own pool, while local records and tokenization go on. The threads are daemons:
a read that never returns does not hold up the process's exit (the standard library's pools
join every thread at exit). A job waits for a thread at most as long as its deadline.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class PoolBusyError(RuntimeError):
    """Too many jobs wait for this kind of work; the message says which and what to do."""


class PoolTimeoutError(TimeoutError):
    """No answer within the job's deadline (its thread may still be running)."""


_job = threading.local()  # the deadline (time.monotonic) of the job this thread runs, if any


def time_left(own_s: float) -> float:
    """The seconds one step of a job may take: its own timeout, or less where the job that
    runs it has a deadline sooner (a job of several remote requests, each with a timeout of
    its own, would otherwise hold its thread for several deadlines after its caller gave up).
    0 once the job's deadline has passed."""
    deadline = getattr(_job, "deadline", None)
    if deadline is None:
        return own_s
    return max(0.0, min(own_s, deadline - time.monotonic()))


class DaemonPool:
    """At most `threads` jobs run at once, at most `max_waiting` wait; threads start on demand."""

    def __init__(self, name: str, threads: int, max_waiting: int = 256) -> None:
        self.name = name
        self.threads = threads
        self.max_waiting = max_waiting
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self._idle = 0

    def submit(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> Future:
        """fn(*args) on a thread of the pool; `deadline` (time.monotonic) bounds, through
        time_left, every step of it that asks."""
        future: Future = Future()
        with self._lock:
            if self._jobs.qsize() >= self.max_waiting:
                raise PoolBusyError(
                    f"{self.max_waiting} {self.name} jobs are waiting already; retry shortly"
                )
            self._jobs.put((future, fn, args, deadline))
            if self._idle == 0 and self._started < self.threads:
                self._started += 1
                threading.Thread(
                    target=self._work, name=f"{self.name}-{self._started}", daemon=True
                ).start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                return
            future, fn, args, deadline = job
            if not future.set_running_or_notify_cancel():
                continue  # its caller has gone
            _job.deadline = deadline
            try:
                future.set_result(fn(*args))
            except BaseException as error:
                future.set_exception(error)
            finally:
                _job.deadline = None

    def shutdown(self) -> None:
        """Drop what waits; idle threads end, busy ones end after their job (without waiting
        for them). Jobs submitted later start new threads."""
        with self._lock:
            while True:
                try:
                    future, *_ = self._jobs.get_nowait()
                except queue.Empty:
                    break
                future.cancel()
            for _ in range(self._started):
                self._jobs.put(None)
            self._started = 0

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """fn(*args) on a thread of this pool; PoolTimeoutError after `timeout` seconds (waiting
        for a thread included). A caller that is cancelled cancels the job if it has not begun."""
        deadline = None if timeout is None else time.monotonic() + timeout
        future = asyncio.wrap_future(self.submit(fn, *args, deadline=deadline))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise PoolTimeoutError(f"no answer within {timeout:g} s") from None


@dataclass
class Pools:
    """The server's pools: local file reads, remote reads, CPU work such as tokenizing example
    text, and budgets of their own for live requests' checks and for token searches, so that
    heavy records' text work never holds up a live request."""

    local: DaemonPool = field(default_factory=lambda: DaemonPool("local read", 4))
    remote: DaemonPool = field(default_factory=lambda: DaemonPool("remote read", 8, 64))
    cpu: DaemonPool = field(default_factory=lambda: DaemonPool("tokenizing", 2))
    live: DaemonPool = field(default_factory=lambda: DaemonPool("live tokenizing", 2))
    search: DaemonPool = field(default_factory=lambda: DaemonPool("token search", 2))

    def shutdown(self) -> None:
        for pool in (self.local, self.remote, self.cpu, self.live, self.search):
            pool.shutdown()


def side_by_side(jobs: list[Callable[[], T]]) -> list[tuple[T | None, BaseException | None]]:
    """Run the jobs on daemon threads at once and wait for all: (result, error) of each;
    each within the deadline of the job that runs them, if it has one."""
    outcomes: list[tuple[Any, BaseException | None]] = [(None, None)] * len(jobs)
    deadline = getattr(_job, "deadline", None)

    def run(i: int, job: Callable[[], T]) -> None:
        _job.deadline = deadline
        try:
            outcomes[i] = (job(), None)
        except BaseException as error:
            outcomes[i] = (None, error)

    threads = [
        threading.Thread(target=run, args=(i, job), daemon=True) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
