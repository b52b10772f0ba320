"""Decoding a local dataset's row groups ahead of the records asked, in the background.

A cold record costs the decoding of its row group (a 128-row group of a collated file is 89
column chunks: 4-5 ms of one core, most of a cold answer), and a user going from neuron to
neuron touches a new group on almost every page. Once a local dataset has decoded its first
group for a set of columns (the columns a record shows), a thread decodes its other groups with
the same columns, one at a time, into the cache of decoded groups that answers requests. It runs
at the lowest CPU priority (nice 19, Linux): it takes only the CPU that nothing else wants, so a
collation or a request never waits for it. It stops once the cache holds a share of its budget
(READ_AHEAD_SHARE: it never pushes out what requests decoded), when the dataset closes (a file
replaced under a running server), at an unexpected error, and at exit (a damaged group is
skipped by its reader: the request for it says what is wrong, the others are read on). Remote
datasets are not read ahead: their bytes cost requests and their hosts.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

from activations.io.lru import LruCache

READ_AHEAD_SHARE = 0.5
"""The share of the decoded-group cache (its bytes and its count) that reading ahead fills: the
record columns of a 46,080-neuron collated file (histograms included) decode to about 160 MB,
which half of the default 512 MB holds."""
EXIT_WAIT_S = 30.0
"""How long exiting waits for the groups being decoded, all threads together: a group is a few
milliseconds of one core, but at nice 19 on a machine whose cores are busy (a test suite in two
processes) it may wait seconds for them."""

_log = logging.getLogger(__name__)
_stopping = threading.Event()
_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()


def start(
    name: str, groups: Iterator[object], decode: Callable[[object], bool], cache: LruCache
) -> threading.Thread | None:
    """Decode each of `groups` on a background thread of the lowest priority: decode(group)
    (False: the dataset closed, stop), while the cache it decodes into has room (its share of
    the cache's bytes and count). None (no thread) where the cache's bytes are not bounded."""
    if cache.max_weight is None:
        return None

    def room() -> bool:
        return (
            cache.weight < cache.max_weight * READ_AHEAD_SHARE
            and len(cache) < cache.capacity * READ_AHEAD_SHARE
        )

    def run() -> None:
        _lowest_priority()
        try:
            for group in groups:
                if _stopping.is_set() or not room() or not decode(group):
                    return
        except Exception as error:  # noqa: BLE001 (the request for that group reports it)
            _log.debug("reading %s ahead stopped: %s", name, error)
        finally:
            with _threads_lock:
                _threads.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=f"read ahead {name}", daemon=True)
    with _threads_lock:
        _threads.add(thread)
    thread.start()
    return thread


def _set_nice(native_id: int | None, nice: int | None) -> None:
    """One thread's nice value, or (None) the calling thread's (Linux: a thread's own priority;
    elsewhere the call would set the whole process's, so it is not made), where the system
    allows it (raising a priority again needs root, or room within RLIMIT_NICE)."""
    if sys.platform.startswith("linux") and native_id is not None:
        try:
            if nice is None:
                nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, native_id, nice)
        except OSError:
            pass


def _lowest_priority() -> None:
    """This thread at nice 19."""
    _set_nice(threading.get_native_id(), 19)


def _restore_priority(thread: threading.Thread) -> None:
    """The thread at the calling thread's priority again, where the system allows it."""
    _set_nice(thread.native_id, None)


@atexit.register
def _stop_all() -> None:
    """Stop every reading ahead before the interpreter finalizes (a thread decoding then is
    ended inside pyarrow's C++ frames, and the process aborts: "terminate called without an
    active exception"): each stops after the group it decodes, which it decodes at the exiting
    thread's priority where that may be restored, so that busy cores do not starve it past
    EXIT_WAIT_S."""
    _stopping.set()
    with _threads_lock:
        threads = list(_threads)
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread in threads:
        _restore_priority(thread)
    for thread in threads:
        thread.join(max(0.01, deadline - time.monotonic()))
