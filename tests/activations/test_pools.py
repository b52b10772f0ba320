"""The daemon pools: a job runs at once where the pool has room, never more than its threads
run, what waits is bounded, and a shutdown drops what waits without stopping what runs."""

from __future__ import annotations

import threading
import time

import pytest

from activations.pools import DaemonPool, PoolBusyError


def test_a_job_submitted_while_another_holds_its_thread_runs_at_once():
    """A thread that has just taken a job is busy: the next job starts a thread of its own
    (it used to wait behind the first now and then, when it came as the first was taken)."""
    for _ in range(2000):  # the old race lost about one time in twenty
        pool = DaemonPool("test", 4)
        release = threading.Event()
        held = pool.submit(release.wait, 30)
        try:
            assert pool.submit(int, "7").result(timeout=10) == 7
            assert not held.done()
        finally:
            release.set()
            pool.shutdown()


def test_at_most_its_threads_run_and_at_most_max_waiting_wait():
    pool = DaemonPool("test", 2, max_waiting=2)
    release, running, most = threading.Event(), [], []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running.append(1)
            most.append(len(running))
        release.wait(30)
        with lock:
            running.pop()

    futures = [pool.submit(job) for _ in range(2)]
    deadline = time.monotonic() + 10
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    futures += [pool.submit(job) for _ in range(2)]  # these wait: both threads are busy
    with pytest.raises(PoolBusyError, match="2 test jobs are waiting already; retry shortly"):
        pool.submit(job)
    release.set()
    for future in futures:
        future.result(timeout=10)
    assert max(most) == 2
    pool.shutdown()


def test_shutdown_drops_what_waits_lets_the_running_job_end_and_later_jobs_run():
    pool = DaemonPool("test", 1)
    entered, release = threading.Event(), threading.Event()

    def job() -> bool:
        entered.set()
        return release.wait(30)

    running = pool.submit(job)
    assert entered.wait(10)
    waiting = pool.submit(int, "1")
    pool.shutdown()
    assert waiting.cancelled()
    assert not running.done()
    release.set()
    assert running.result(timeout=10) is True
    assert pool.submit(int, "2").result(timeout=10) == 2  # a new thread for a later job
    pool.shutdown()
