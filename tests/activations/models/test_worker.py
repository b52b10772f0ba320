"""The model's worker: live requests and searches go before background work (a record's example
values, one pass per job) that waits, so a heavy record holds them up for one pass at most."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import weakref
from types import SimpleNamespace

from activations.models.live import LiveRequest
from activations.models.requests import one_pass_each
from activations.models.worker import ModelWorker
from activations.records.file_metadata import CollationMetadata
from activations.sources.glu_source import GluDatasetSource


class Runner:
    """Stands for a ModelRunner: live batches are noted in `order`."""

    def __init__(self) -> None:
        self.metadata = SimpleNamespace(short_name="stand-in")
        self.order: list[str] = []

    def run(self, requests: list[LiveRequest]) -> list[str]:
        self.order.append("live")
        return ["traces"] * len(requests)


def test_live_requests_and_searches_go_before_waiting_background_work():
    runner = Runner()
    worker = ModelWorker(runner, micro_batch_wait_s=0)
    running, release = threading.Event(), threading.Event()

    def first_pass(_):
        running.set()
        release.wait(30)
        runner.order.append("pass 1")

    futures = [worker.submit(first_pass, background=True)]
    assert running.wait(30)  # a record's first pass holds the model
    futures.append(worker.submit(lambda _: runner.order.append("pass 2"), background=True))
    futures.append(worker.submit(lambda _: runner.order.append("pass 3"), background=True))
    futures.append(worker.submit_live(LiveRequest(texts=("w1",), layer=0)))
    futures.append(worker.submit(lambda _: runner.order.append("search")))
    release.set()
    for future in futures:
        future.result(30)
    assert runner.order == ["pass 1", "live", "search", "pass 2", "pass 3"]
    worker.stop()


def test_a_records_documents_are_split_into_passes_within_the_budget():
    documents = [[1] * n for n in (5, 900, 3000, 40, 4000, 8000, 10)]
    groups = one_pass_each(documents, budget=8192)
    assert [ids for group in groups for ids in group] == documents  # all, in order
    for group in groups:
        assert len(group) == 1 or max(map(len, group)) * len(group) <= 8192
    assert len(groups) > 1


def test_a_record_whose_client_left_runs_no_more_passes():
    class Models:
        def __init__(self) -> None:
            self.jobs: list[bool] = []

        async def run(self, short_name, work, background=False):
            self.jobs.append(background)
            asyncio.current_task().cancel()  # the client leaves during the first pass
            await asyncio.sleep(0)
            return [{"hook_post": []}]

    models = Models()
    source = GluDatasetSource.__new__(GluDatasetSource)
    source.metadata = SimpleNamespace(model="stand-in")
    source.shared = SimpleNamespace(models=models)
    record = SimpleNamespace(layer=0, neuron=1, file_metadata=CollationMetadata())
    documents = [[1] * 5000 for _ in range(4)]  # four passes' worth

    async def ask() -> None:
        await source.neuron_values(record, documents, ["hook_post"])

    try:
        asyncio.run(ask())
    except asyncio.CancelledError:
        pass
    assert models.jobs == [True]  # one background pass asked, none after the client left


def test_a_micro_batch_is_about_one_pass_of_tokens():
    runner = Runner()
    batches: list[int] = []
    runner.run = lambda requests: batches.append(len(requests)) or ["t"] * len(requests)
    worker = ModelWorker(runner, micro_batch_wait_s=0, batch_tokens=1000)
    running, release = threading.Event(), threading.Event()
    held = worker.submit(lambda _: (running.set(), release.wait(30)))
    assert running.wait(30)
    sizes = [600, 600, 300, 50, 50, 900]
    futures = [worker.submit_live(LiveRequest(("w",), 0, n_tokens=n)) for n in sizes]
    release.set()
    held.result(30)
    for future in futures:
        future.result(30)
    assert batches == [1, 4, 1]  # 600 | 600+300+50+50 | 900: none over 1,000 tokens
    worker.stop()


def test_a_done_job_is_not_held_while_the_worker_waits():
    """What a job referred to is freed once it is done, not when the next job comes (nor as
    the process exits, on a thread the interpreter is finalizing)."""
    worker = ModelWorker(Runner(), micro_batch_wait_s=0)

    class Held:
        pass

    held = Held()
    gone = weakref.ref(held)
    worker.submit(lambda _, held=held: None).result(30)
    del held
    for _ in range(100):  # the worker drops its frame's references after setting the result
        gc.collect()
        if gone() is None:
            break
        time.sleep(0.01)
    assert gone() is None
    worker.stop()


def test_a_worker_stopped_without_waiting_has_ended_before_the_interpreter_finalizes():
    """A worker stopped without waiting (or never stopped) is waited for at exit; an exit
    handler registered before the worker module's runs after its own and sees the thread."""
    script = """
import atexit, sys
seen = []
atexit.register(lambda: print("alive" if any(t.is_alive() for t in seen) else "ended"))
from types import SimpleNamespace
from activations.models.worker import ModelWorker
runner = SimpleNamespace(metadata=SimpleNamespace(short_name="stand-in"))
stopped, kept = ModelWorker(runner), ModelWorker(runner)
seen += [stopped._thread, kept._thread]
stopped.submit(lambda _: __import__("time").sleep(0.5))
stopped.stop()  # without waiting: its job goes on
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ended"
