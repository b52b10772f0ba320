"""The one HTTP client of byte I/O: aiohttp, for whole files (storage.SourceReader, on the
caller's event loop) and for byte ranges (remote.RemoteFile, on pyarrow's threads).

Blocking callers reach it through `blocking()`: one event loop on a daemon thread of its own,
with one session (its connection pool shared by every remote file), and a call that waits for
a coroutine run there. Sessions honour HTTP(S)_PROXY / NO_PROXY (trust_env), as blobfile and
huggingface_hub do.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

T = TypeVar("T")

# Waiting on the loop thread a little longer than a call's own deadline: the coroutine ends
# itself at its deadline; this margin only covers a loop that stopped answering.
_MARGIN_S = 5.0


def new_session(timeout_s: float | None = None, trust_env: bool = True) -> aiohttp.ClientSession:
    """A session as every reader of bytes makes it; call on the loop that will use it.
    `timeout_s` bounds each request in all (connecting, sending, reading the whole answer)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        trust_env=trust_env,
        raise_for_status=False,
    )


class BlockingHttp:
    """An event loop on a daemon thread and its session, for callers that cannot await."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child makes its own: threads do not cross a fork
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="byte-io-http", daemon=True
        )
        self._thread.start()
        self.session = self.call(self._open, 30.0)

    async def _open(self) -> aiohttp.ClientSession:
        return new_session()

    def call(self, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Run `make()` on the loop and wait for its outcome (its exception raised here). The
        coroutine keeps its own deadline; past it and the margin, it is cancelled."""
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout_s + _MARGIN_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Close the session and stop the loop (at exit: no unclosed-session warning)."""
        if self.loop.is_closed():
            return
        try:
            self.call(self.session.close, 5.0)
        except Exception:  # a loop that stopped answering: leave it to the exit
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


_BLOCKING: list[BlockingHttp] = []
_LOCK = threading.Lock()


def blocking() -> BlockingHttp:
    """The process's blocking client, started on first use."""
    with _LOCK:
        if _BLOCKING and _BLOCKING[0].pid != os.getpid():
            _BLOCKING.clear()
        if not _BLOCKING:
            _BLOCKING.append(BlockingHttp())
        return _BLOCKING[0]


@atexit.register
def _close_at_exit() -> None:
    with _LOCK:
        started = [b for b in _BLOCKING if b.pid == os.getpid()]
        _BLOCKING.clear()
    for client in started:
        client.close()
