"""Read a file's bytes from any path the registry accepts, for the server, without blocking it.

http(s) goes through one aiohttp session (http_client.py, the client every reader of bytes
uses) with timeouts and retries; az://, gs://, hf://
and local files go through their (blocking) libraries in a worker thread. Every failure comes out
as one of three errors, each naming the path and the reason: SourceNotFoundError,
SourceUnavailableError and SourceTimeoutError, which are the record errors (errors.py) of their
kind, so the server maps them to 404, 502 and 504.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from activations.io.errors import RecordNotFoundError, UpstreamError, UpstreamTimeoutError
from activations.io.http_client import new_session
from activations.pools import PoolBusyError, Pools, PoolTimeoutError
from registry.errors import UnsupportedPathError
from registry.paths import local_path, path_scheme, validate_path

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.25
_MAX_BACKOFF_S = 4.0
_CHUNK = 1 << 16
# Statuses worth asking again: the server's fault or a request to slow down.
_RETRY_STATUSES = frozenset({408, 429})
_NOT_FOUND_STATUSES = frozenset({404, 410})


class StorageError(Exception):
    """Reading a path failed; `path` and `reason` are kept apart for logs and responses."""

    summary = "could not read"

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{self.summary} {path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class SourceNotFoundError(StorageError, RecordNotFoundError):
    """Nothing at that path (HTTP 404/410, a missing file or blob)."""

    summary = "not found:"


class SourceUnavailableError(StorageError, UpstreamError):
    """The path exists in principle but could not be read: upstream down or refusing, 5xx after
    retries, connection refused, or a response over the size limit."""

    summary = "could not read"


class SourceTimeoutError(StorageError, UpstreamTimeoutError):
    """No complete answer in time, after retries."""

    summary = "timed out reading"


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not; carries the error to raise last."""

    def __init__(self, error_type: type[StorageError], reason: str):
        self.error_type = error_type
        self.reason = reason


def _too_large(size: int, max_bytes: int) -> str:
    return f"response is {size} bytes or more, over the {max_bytes}-byte limit"


def _is_timeout(error: BaseException) -> bool:
    # httpx (huggingface_hub) and blobfile have their own timeout types; match them by name so
    # neither needs importing here.
    names = {c.__name__ for c in type(error).__mro__}
    return isinstance(error, (TimeoutError, asyncio.TimeoutError)) or bool(
        names & {"TimeoutException", "DeadlineExceeded"}
    )


def classify_error(path: str, error: Exception) -> StorageError:
    """What the blocking libraries (the file system, fsspec, blobfile, huggingface_hub) raise,
    as one of our three errors."""
    names = {c.__name__ for c in type(error).__mro__}
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if "GatedRepoError" in names or isinstance(error, PermissionError):
        return SourceUnavailableError(path, reason)
    not_found = {"EntryNotFoundError", "RepositoryNotFoundError", "RevisionNotFoundError"}
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) or (
        names & not_found
    ):
        return SourceNotFoundError(path, reason)
    if _is_timeout(error):
        return SourceTimeoutError(path, reason)
    return SourceUnavailableError(path, reason)


def _read_limited(
    opener: Callable[[], Any], path: str, max_bytes: int, budget_s: float | None = None
) -> bytes:
    """Read at most max_bytes from a file-like object; one byte more means too large. With a
    budget, read a chunk at a time and give up once it is spent: a source that dribbles its
    bytes does not keep the pool's thread after its caller got its 504."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    chunks, got = [], 0
    with opener() as f:
        while got <= max_bytes:
            if deadline is not None and time.monotonic() > deadline:
                raise SourceTimeoutError(
                    path, f"no complete read within {budget_s:g} s ({got} bytes came)"
                )
            chunk = f.read(min(_CHUNK, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise SourceUnavailableError(path, _too_large(len(data), max_bytes))
    return data


def _read_local(path: str, file_path: str, max_bytes: int) -> bytes:
    size = os.stat(file_path).st_size
    if size > max_bytes:
        raise SourceUnavailableError(path, _too_large(size, max_bytes))
    return _read_limited(lambda: open(file_path, "rb"), path, max_bytes)


class SourceReader:
    """Reads whole files as bytes from local paths, file://, http(s)://, az://, gs:// and hf://.

    `timeout_s` bounds each HTTP attempt; blob and Hugging Face reads, whose libraries retry
    on their own, get the whole budget of (retries + 1) × timeout_s. One reader belongs to the
    event loop that first reads over HTTP; call `close()` (or use `async with`) when done.
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        trust_env: bool = True,
        pools: Pools | None = None,
    ):
        if timeout_s <= 0 or max_bytes <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s and max_bytes must be positive, retries and backoff_s ≥ 0")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff_s = backoff_s
        self.trust_env = trust_env  # honour HTTP(S)_PROXY / NO_PROXY, as blobfile and hf do
        self.pools = pools or Pools()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._blob_context: Any = None
        self._hf_fs: Any = None

    async def __aenter__(self) -> SourceReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session; a later read opens a new one."""
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    async def read_bytes(self, path: str) -> bytes:
        """The whole file at `path`; raises SourceNotFoundError, SourceUnavailableError or
        SourceTimeoutError (and UnsupportedPathError for a scheme we cannot read)."""
        validate_path(path)
        scheme = path_scheme(path)
        if scheme in ("http", "https"):
            return await self._read_http(path)
        if scheme in ("", "file"):
            file_path = local_path(path)
            assert file_path is not None
            return await self._in_thread(path, _read_local, path, file_path, self.max_bytes)
        if scheme in ("az", "gs"):
            return await self._in_thread(path, self._read_blob, path)
        if scheme == "hf":
            return await self._in_thread(path, self._read_hf, path)
        raise UnsupportedPathError(f"no reader for {path!r}")  # validate_path let a new one in

    # -- http(s) -------------------------------------------------------------------------------

    def _http_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError(
                    "this SourceReader's HTTP session belongs to another event loop; "
                    "make one reader per loop, or close() it before switching loops"
                )
            return self._session
        self._session = new_session(self.timeout_s, trust_env=self.trust_env)
        self._loop = loop
        return self._session

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter so that many waiting requests do not retry at once."""
        delay = min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
        return delay * random.uniform(0.5, 1.0)

    async def _read_http(self, url: str) -> bytes:
        session = self._http_session()
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff(attempt))
            try:
                return await self._http_attempt(session, url)
            except _Retryable as failure:
                last = failure
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise last.error_type(url, f"{last.reason} (gave up after {tries})")

    async def _http_attempt(self, session: aiohttp.ClientSession, url: str) -> bytes:
        try:
            async with session.get(url) as response:
                status = response.status
                if 200 <= status < 300:
                    return await self._http_body(response, url)
                reason = f"HTTP {status} {response.reason or ''}".rstrip()
                if status in _NOT_FOUND_STATUSES:
                    raise SourceNotFoundError(url, reason)
                if status >= 500 or status in _RETRY_STATUSES:
                    raise _Retryable(SourceUnavailableError, reason)
                raise SourceUnavailableError(url, reason)
        except (StorageError, _Retryable):
            raise
        except aiohttp.InvalidURL as error:
            raise SourceUnavailableError(url, f"invalid URL: {error}") from None
        except Exception as error:
            if _is_timeout(error):
                reason = f"no complete response within {self.timeout_s:g} s"
                raise _Retryable(SourceTimeoutError, reason) from None
            if isinstance(error, (aiohttp.ClientError, OSError)):
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                raise _Retryable(SourceUnavailableError, reason) from error
            raise

    async def _http_body(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            raise SourceUnavailableError(url, _too_large(declared, self.max_bytes))
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:  # no or wrong Content-Length, or decompressed
                raise SourceUnavailableError(url, _too_large(len(body), self.max_bytes))
        return bytes(body)

    # -- blocking libraries, in a thread ----------------------------------------------------------

    async def _in_thread(self, path: str, read: Callable[..., bytes], *args: Any) -> bytes:
        """On a daemon thread of the pool for this kind of path, within the whole budget: a
        thread cannot be cancelled, so one we stop waiting for finishes in the background
        (bounded by max_bytes), its outcome dropped, and holds up no shutdown."""
        budget = self._budget()
        pool = self.pools.local if local_path(path) is not None else self.pools.remote
        try:
            return await pool.run(read, *args, timeout=budget)
        except PoolTimeoutError:
            raise SourceTimeoutError(path, f"no complete read within {budget:g} s") from None
        except (StorageError, PoolBusyError):
            raise
        except Exception as error:
            raise classify_error(path, error) from error

    def _read_blob(self, path: str) -> bytes:
        if self._blob_context is None:
            import blobfile

            seconds = max(1, round(self.timeout_s))
            self._blob_context = blobfile.create_context(
                retry_limit=self.retries, connect_timeout=seconds, read_timeout=seconds
            )
        ctx = self._blob_context
        opener = lambda: ctx.BlobFile(path, "rb", streaming=True)  # noqa: E731
        return _read_limited(opener, path, self.max_bytes, self._budget())

    def _read_hf(self, path: str) -> bytes:
        if self._hf_fs is None:
            from huggingface_hub import HfFileSystem

            self._hf_fs = HfFileSystem()
        fs = self._hf_fs
        # block_size=0 streams the file in one request instead of ranged block reads.
        opener = lambda: fs.open(path, "rb", block_size=0)  # noqa: E731
        return _read_limited(opener, path, self.max_bytes, self._budget())

    def _budget(self) -> float:
        """The whole budget of a read by a library that retries on its own."""
        return self.timeout_s * (self.retries + 1)
