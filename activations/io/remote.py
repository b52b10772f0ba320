"""Remote Parquet files read by byte ranges: the footer once, then exactly the column chunks an
answer needs, in one request, kept on disk (byte_cache.py).

Requests go through the one HTTP client of byte I/O (http_client.py: aiohttp, from these blocking
callers through its loop thread), honouring HTTP(S)_PROXY / NO_PROXY.

A request for several ranges asks for them together (`Range: bytes=a-b,c-d`, answered 206
multipart/byteranges by servers that support it); a server that answers such a request with the
whole file is closed at once and asked range by range instead, side by side. Every failure is a
record error naming the URL and the server's answer.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from activations.io import http_client
from activations.io.byte_cache import ByteCache
from activations.io.errors import UpstreamError, UpstreamTimeoutError
from activations.pools import PoolTimeoutError, side_by_side, time_left

TAIL_BYTES = 64 * 1024  # the first read of a file: its footer, usually whole
_PART_HEAD_BYTES = 512  # a multipart/byteranges part's boundary and headers, at most
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

Range = tuple[int, int]  # [start, end): end exclusive


@dataclass(frozen=True)
class Answer:
    """What one GET answered: its status, its headers, and as much of its body as was read."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Transport:
    """An HTTP client for one kind of URL: how to make it, and the headers every request needs
    (a token for the Hub)."""

    headers: Callable[[], dict[str, str]] = dict
    describe: Callable[[str], str] = lambda url: url
    timeout_s: float = 10.0
    multi_range: bool | None = None  # None: not known yet for this server
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "bytes": 0})


def _status_error(url: str, status: int, reason: str) -> UpstreamError:
    names = {401: "unauthorized (a token is needed)", 403: "forbidden", 404: "not found",
             416: "a range it cannot serve", 429: "too many requests (rate limited)"}  # fmt: skip
    said = names.get(status, reason or "an error")
    return UpstreamError(f"{url} answered {status} ({said})")


def _transport_error(url: str, error: Exception) -> UpstreamError:
    names = {c.__name__ for c in type(error).__mro__}
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    if names & {"TimeoutException", "TimeoutError", "ReadTimeout", "ConnectTimeout"}:
        return UpstreamTimeoutError(f"{url}: no answer in time ({reason})")
    return UpstreamError(f"{url} could not be reached ({reason})")


class RemoteFile:
    """One remote file: size and version from its first answer, bytes by range."""

    def __init__(
        self, url: str, transport: Transport, cache: ByteCache, etag: str | None = None
    ) -> None:
        self.url = url
        self.transport = transport
        self.cache = cache
        self.etag = etag
        self.size = 0
        self.key = ""
        self._tail = b""
        self._tail_start = 0
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------------

    def open(self, size: int | None = None) -> RemoteFile:
        """Learn the size (from the listing, or the answer to a suffix range) and keep the tail,
        where the footer is."""
        if size is not None and self.etag is not None:
            self.size, self.key = size, ByteCache.key(self.url, size, self.etag)
            start = max(0, size - TAIL_BYTES)
            cached = self.cache.read(self.key, start, size)
            if cached is not None:
                self._tail, self._tail_start = cached, start
                return self
        answer = self._request(
            {"Range": f"bytes=-{TAIL_BYTES}"}, expect_ranges=True, limit=TAIL_BYTES
        )
        body = answer.body
        match = _CONTENT_RANGE.fullmatch(answer.headers.get("content-range", ""))
        if answer.status == 206 and match and match.group(3) != "*":
            self.size, start = int(match.group(3)), int(match.group(1))
        elif answer.status == 200:  # a small file, sent whole
            self.size, start = len(body), 0
        else:
            raise UpstreamError(f"{self.url} answered a range request without a range")
        self.etag = self.etag or answer.headers.get("etag")
        self.key = ByteCache.key(self.url, self.size, self.etag)
        self._tail, self._tail_start = body, start
        self.cache.keep(self.key, start, body)
        return self

    def forget(self, ranges: list[Range] | None = None) -> None:
        """Drop what is kept of these ranges (of the whole file: None), where they did not
        decode: the next read fetches them again."""
        if ranges is None:
            self._tail, self._tail_start = b"", 0
        if self.key:
            self.cache.discard(self.key, ranges)

    def reader(self) -> io.RawIOBase:
        """A file object for pyarrow, served from the tail, the disk cache, or a fetch;
        unbuffered, so that pyarrow's reads of a column chunk ask for exactly its bytes."""
        return _Sparse(self)

    # -- bytes -----------------------------------------------------------------------------------

    def read(self, start: int, end: int) -> bytes | memoryview:
        if self._tail and self._tail_start <= start and end <= self._tail_start + len(self._tail):
            return self._tail[start - self._tail_start : end - self._tail_start]
        cached = self.cache.read(self.key, start, end)
        if cached is not None:
            return cached
        self.fetch([(start, end)])
        cached = self.cache.read(self.key, start, end)
        if cached is None:
            raise UpstreamError(f"{self.url}: bytes {start}-{end} could not be kept")
        return cached

    def fetch(self, ranges: list[Range]) -> None:
        """Fetch the ranges not on disk yet: in one request where the server can."""
        wanted = self.cache.missing(self.key, sorted(set(ranges)))
        if not wanted:
            return
        if len(wanted) > 1 and self.transport.multi_range is not False:
            if self._fetch_together(wanted):
                return
        outcomes = side_by_side([lambda r=r: self._fetch_one(r) for r in wanted])
        for _, error in outcomes:
            if error is not None:
                raise error

    def _fetch_one(self, wanted: Range) -> None:
        start, end = wanted
        answer = self._request(
            {"Range": f"bytes={start}-{end - 1}"}, expect_ranges=True, limit=end - start
        )
        body = answer.body
        if answer.status != 206:
            raise UpstreamError(
                f"{self.url} does not answer byte ranges (HTTP Range requests), which reading "
                "a remote Parquet file needs"
            )
        said = answer.headers.get("content-range", "")
        match = _CONTENT_RANGE.fullmatch(said)
        if match is None or (int(match.group(1)), int(match.group(2)) + 1) != (start, end):
            raise UpstreamError(
                f"{self.url} answered bytes {start}-{end - 1} with Content-Range {said!r}"
            )
        if len(body) != end - start:
            raise UpstreamError(
                f"{self.url} sent {len(body)} bytes for the {end - start} of bytes "
                f"{start}-{end - 1}"
            )
        self.cache.keep(self.key, start, body)

    def _fetch_together(self, wanted: list[Range]) -> bool:
        """One multi-range request; False where the server does not support it."""
        spec = ",".join(f"{a}-{b - 1}" for a, b in wanted)
        # the parts and their heads, or one range from the first start to the last end
        parts = sum(b - a for a, b in wanted) + _PART_HEAD_BYTES * (len(wanted) + 1)
        limit = max(parts, wanted[-1][1] - wanted[0][0])
        try:
            answer = self._request({"Range": f"bytes={spec}"}, expect_ranges=True, limit=limit)
        except UpstreamTimeoutError:
            raise
        except UpstreamError:  # a server that fails on several ranges: ask one at a time
            self.transport.multi_range = False
            return False
        body = answer.body
        kind = answer.headers.get("content-type", "")
        if answer.status == 206 and kind.startswith("multipart/byteranges"):
            self.transport.multi_range = True
            for start, data in _parts(body, kind, wanted, self.url):
                self.cache.keep(self.key, start, data)
            return True
        match = _CONTENT_RANGE.fullmatch(answer.headers.get("content-range", ""))
        if answer.status == 206 and match:  # one range covering them all
            first, last = int(match.group(1)), int(match.group(2)) + 1
            if first > wanted[0][0] or last < wanted[-1][1] or len(body) != last - first:
                raise UpstreamError(
                    f"{self.url} answered bytes {spec} with bytes {first}-{last - 1} "
                    f"({len(body)} bytes sent)"
                )
            self.cache.keep(self.key, first, body)
            return True
        self.transport.multi_range = False
        return False

    def _request(self, extra: dict[str, str], expect_ranges: bool, limit: int) -> Answer:
        """One GET whose body is at most `limit` bytes (what was asked): a longer one is not
        read past it; and within the transport's timeout in all (a server that dribbles its
        answer is left then). A 200 where a range was asked is not read (the whole file)."""
        transport = self.transport
        headers = {**transport.headers(), **extra}
        got = [0]  # body bytes read so far, for the message of a deadline
        client = http_client.blocking()
        get = lambda: self._get(client.session, headers, expect_ranges, limit, got)  # noqa: E731
        timeout = time_left(transport.timeout_s)  # within the job's deadline, if it has one
        try:
            if timeout <= 0:
                raise TimeoutError
            answer = client.call(lambda: asyncio.wait_for(get(), timeout), timeout)
        except UpstreamError:
            raise
        except (TimeoutError, asyncio.TimeoutError):
            if timeout < transport.timeout_s:
                # the job's deadline came first: its caller says so, once, in its own words
                where = transport.describe(self.url)
                raise PoolTimeoutError(f"{where}: past the deadline") from None
            raise UpstreamTimeoutError(
                f"{transport.describe(self.url)}: no complete answer within "
                f"{timeout:.3g} s ({got[0]} bytes came)"
            ) from None
        except Exception as error:
            raise _transport_error(transport.describe(self.url), error) from None
        with self._lock:
            transport.stats["requests"] += 1
            transport.stats["bytes"] += len(answer.body)
        return answer

    async def _get(
        self,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        expect_ranges: bool,
        limit: int,
        got: list[int],
    ) -> Answer:
        """The GET itself, on the client's loop. Leaving early closes the connection: the rest
        of an answer is not read, nor is the connection used again."""
        async with session.get(self.url, headers=headers) as response:
            status, said = response.status, response.headers
            if status >= 400:
                response.close()
                raise _status_error(self.transport.describe(self.url), status, "")
            if status == 200 and expect_ranges and headers.get("Range", "").count(",") > 0:
                response.close()
                return Answer(status, said, b"")
            declared = response.content_length
            if status == 200 and expect_ranges and not (declared and declared <= TAIL_BYTES):
                response.close()
                raise UpstreamError(
                    f"{self.url} does not answer byte ranges (HTTP Range requests), which "
                    "reading a remote Parquet file needs"
                )
            if declared is not None and declared > limit:
                response.close()
                raise UpstreamError(self._too_much(declared, limit))
            return Answer(status, said, await self._body(response, limit, got))

    def _too_much(self, sent: int, limit: int) -> str:
        more = "or more " if sent == limit + 1 else ""
        return f"{self.url} sent {sent} bytes {more}where {limit} were asked for"

    async def _body(self, response: aiohttp.ClientResponse, limit: int, got: list[int]) -> bytes:
        """The body as it arrives, a chunk at a time, given up once past `limit` (a deadline
        around the whole request cuts a dribbling one off)."""
        chunks = []
        while got[0] <= limit:
            chunk = await response.content.readany()
            if not chunk:
                break
            chunks.append(chunk)
            got[0] += len(chunk)
        if got[0] > limit:
            response.close()
            raise UpstreamError(self._too_much(limit + 1, limit))  # at least that many
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parts(
    body: bytes, content_type: str, wanted: list[Range], url: str
) -> list[tuple[int, memoryview]]:
    """(start, bytes) of each part of a multipart/byteranges body: views of it, not copies (a
    first copy of fresh memory is what costs most in a cold neuron's answer on some VMs). Each
    part must be whole and one of the ranges asked for."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    parts, at, view = [], 0, memoryview(body)
    while True:
        at = body.find(b"--" + boundary, at)
        if at < 0 or body[at + len(boundary) + 2 : at + len(boundary) + 4] == b"--":
            return parts
        head_end = body.find(b"\r\n\r\n", at)
        head = body[at:head_end].decode("latin-1")
        match = re.search(r"(?i)content-range:\s*bytes (\d+)-(\d+)/", head)
        if match is None:
            raise UpstreamError(f"{url}: a multipart/byteranges part without Content-Range")
        start, end = int(match.group(1)), int(match.group(2)) + 1
        data_start = head_end + 4
        data = view[data_start : data_start + end - start]
        if len(data) != end - start or start < wanted[0][0] or end > wanted[-1][1]:
            raise UpstreamError(
                f"{url} answered a part of bytes {start}-{end - 1} ({len(data)} bytes sent), "
                "not one of the ranges asked for"
            )
        parts.append((start, data))
        at = data_start + end - start


class _Sparse(io.RawIOBase):
    """A seekable view of a RemoteFile (one per reader: positions are its own)."""

    def __init__(self, remote: RemoteFile) -> None:
        self.remote = remote
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.remote.size}
        self.position = max(0, base[whence] + offset)
        return self.position

    def read(self, size: int = -1) -> bytes | memoryview:
        """The bytes themselves, not a copy: pyarrow wraps what read returns as its buffer, so a
        column chunk just fetched is decoded from the answer's own memory."""
        end = self.remote.size if size is None or size < 0 else self.position + size
        end = min(self.remote.size, end)
        if end <= self.position:
            return b""
        data = self.remote.read(self.position, end)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
