"""Bounded pools of daemon threads, one per kind of blocking work, awaited with a deadline.

Kinds are kept apart so that one cannot starve another: reads of remote datasets that hang
fill only their own pool, while local records and tokenization go on. The threads are daemons:
a read that never returns does not hold up the process's exit (the standard library's pools
join every thread at exit). A job waits for a thread at most as long as its deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
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
    """At most `threads` jobs run at once, at most `max_waiting` wait; threads start on demand.

    A thread leaves the idle count in the same step as it takes a job (under one lock): a job
    submitted meanwhile sees the thread as busy and starts another where the pool has room,
    instead of waiting behind a job that may hold its thread for a long time."""

    def __init__(self, name: str, threads: int, max_waiting: int = 256) -> None:
        self.name = name
        self.threads = threads
        self.max_waiting = max_waiting
        self._jobs: deque = deque()
        self._ready = threading.Condition(threading.Lock())
        self._started = 0
        self._idle = 0  # threads started and not running a job (taking one or waiting for one)
        self._generation = 0  # shutdown starts a new one: the threads of older ones end

    def submit(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> Future:
        """fn(*args) on a thread of the pool; `deadline` (time.monotonic) bounds, through
        time_left, every step of it that asks."""
        future: Future = Future()
        with self._ready:
            if len(self._jobs) >= self.max_waiting:
                raise PoolBusyError(
                    f"{self.max_waiting} {self.name} jobs are waiting already; retry shortly"
                )
            self._jobs.append((future, fn, args, deadline))
            if len(self._jobs) > self._idle and self._started < self.threads:
                self._started += 1
                self._idle += 1  # counted from now: it will take a job without waiting
                threading.Thread(
                    target=self._work,
                    args=(self._generation,),
                    name=f"{self.name}-{self._started}",
                    daemon=True,
                ).start()
            self._ready.notify()
        return future

    def _take(self, generation: int) -> tuple | None:
        """The next job, waited for; None once the pool has shut down since this thread began."""
        with self._ready:
            while not self._jobs and generation == self._generation:
                self._ready.wait()
            if generation != self._generation:
                return None
            self._idle -= 1
            return self._jobs.popleft()

    def _work(self, generation: int) -> None:
        while (job := self._take(generation)) is not None:
            future, fn, args, deadline = job
            if future.set_running_or_notify_cancel():  # else its caller has gone
                _job.deadline = deadline
                try:
                    future.set_result(fn(*args))
                except BaseException as error:
                    future.set_exception(error)
                finally:
                    _job.deadline = None
            del job, future, fn, args  # not held while the next is waited for
            with self._ready:
                if generation != self._generation:
                    return
                self._idle += 1

    def shutdown(self) -> None:
        """Drop what waits; idle threads end, busy ones end after their job (without waiting
        for them). Jobs submitted later start new threads."""
        with self._ready:
            for future, *_ in self._jobs:
                future.cancel()
            self._jobs.clear()
            self._generation += 1
            self._started = 0
            self._idle = 0
            self._ready.notify_all()

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """fn(*args) on a thread of this pool; PoolTimeoutError after `timeout` seconds (waiting
        for a thread included). A caller that is cancelled cancels the job if it has not begun."""
        deadline = None if timeout is None else time.monotonic() + timeout
        future = asyncio.wrap_future(self.submit(fn, *args, deadline=deadline))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:  # the wait's, or a step's that time_left cut short
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
