"""SourceReader against a real local HTTP server (127.0.0.1, ephemeral port) and real files."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from activations.io.storage import (
    SourceNotFoundError,
    SourceReader,
    SourceTimeoutError,
    SourceUnavailableError,
)
from registry.errors import UnsupportedPathError

FIXTURE = Path(__file__).parents[2] / "fixtures" / "tdb" / "collated-activations" / "0" / "1.json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve every GET with `handler`; yields the base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def reader(**kwargs) -> SourceReader:
    options = dict(timeout_s=2.0, retries=2, backoff_s=0.01, trust_env=False)
    return SourceReader(**{**options, **kwargs})


async def read_once(url_path: str, handler: Handler, **kwargs) -> bytes:
    async with serving(handler) as base, reader(**kwargs) as source:
        return await source.read_bytes(base + url_path)


def test_http_success_returns_the_exact_bytes():
    body = FIXTURE.read_bytes()
    paths = []

    async def handler(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(body=body, content_type="application/json")

    assert asyncio.run(read_once("/data/0/1.json", handler)) == body
    assert paths == ["/data/0/1.json"]


def test_http_reads_share_one_session_and_connection():
    peers = []

    async def handler(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(body=b"{}")

    async def main() -> None:
        async with serving(handler) as base, reader() as source:
            await source.read_bytes(base + "/a")
            await source.read_bytes(base + "/b")
            await source.close()
            await source.read_bytes(base + "/c")  # a new session after close()

    asyncio.run(main())
    assert peers[0] == peers[1]  # kept alive: the same pooled connection
    assert peers[2] != peers[0]


def test_404_is_not_found_and_not_retried():
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=404, text="BlobNotFound")

    with pytest.raises(SourceNotFoundError) as caught:
        asyncio.run(read_once("/data/9/9.json", handler))
    assert isinstance(caught.value, LookupError)
    assert "/data/9/9.json" in str(caught.value) and "HTTP 404" in str(caught.value)
    assert len(calls) == 1


def test_slow_upstream_times_out_after_retries():
    calls = []
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        await asyncio.wait_for(release.wait(), 5)
        return web.Response(body=b"{}")

    async def main() -> None:
        async with serving(handler) as base, reader(timeout_s=0.2, retries=1) as source:
            try:
                await source.read_bytes(base + "/slow.json")
            finally:
                release.set()

    # the handler answers only when released: a read that ends before is the timeout's doing
    with pytest.raises(SourceTimeoutError) as caught:
        asyncio.run(main())
    assert "/slow.json" in str(caught.value)
    assert "0.2 s" in str(caught.value) and "2 attempts" in str(caught.value)
    assert len(calls) == 2


def test_5xx_is_retried_then_succeeds():
    statuses = [500, 503, 200]
    served = []

    async def handler(request: web.Request) -> web.Response:
        status = statuses[len(served)]
        served.append(status)
        return web.Response(status=status, body=b'{"ok": 1}' if status == 200 else b"oops")

    assert asyncio.run(read_once("/flaky.json", handler, retries=2)) == b'{"ok": 1}'
    assert served == [500, 503, 200]


def test_always_5xx_is_unavailable_after_retries():
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=500)

    with pytest.raises(SourceUnavailableError) as caught:
        asyncio.run(read_once("/down.json", handler, retries=3))
    message = str(caught.value)
    assert "/down.json" in message and "HTTP 500" in message and "4 attempts" in message
    assert len(calls) == 4


def test_other_4xx_is_unavailable_without_retry():
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=403)

    with pytest.raises(SourceUnavailableError, match="HTTP 403"):
        asyncio.run(read_once("/private.json", handler))
    assert len(calls) == 1


def test_connection_refused_is_unavailable():
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> bytes:
        async with reader(retries=1) as source:
            return await source.read_bytes(f"http://127.0.0.1:{port}/0/1.json")

    with pytest.raises(SourceUnavailableError) as caught:
        asyncio.run(main())
    assert f"127.0.0.1:{port}/0/1.json" in str(caught.value)
    assert "2 attempts" in str(caught.value)


def test_response_over_the_size_limit_is_refused():
    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1000)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 100)
        await response.write_eof()
        return response

    for handler in (declared, chunked):
        with pytest.raises(SourceUnavailableError, match="over the 500-byte limit"):
            asyncio.run(read_once("/big.json", handler, max_bytes=500))
    assert asyncio.run(read_once("/ok.json", chunked, max_bytes=1000)) == b"x" * 1000


def test_local_path_and_file_url(tmp_path: Path):
    named = tmp_path / "with space" / "1.json"
    named.parent.mkdir()
    named.write_bytes(b'{"a": 1}')

    async def main() -> list[bytes]:
        async with reader() as source:
            return [
                await source.read_bytes(str(FIXTURE)),
                await source.read_bytes(FIXTURE.as_uri()),
                await source.read_bytes(named.as_uri()),  # file:///…/with%20space/1.json
            ]

    assert asyncio.run(main()) == [FIXTURE.read_bytes(), FIXTURE.read_bytes(), b'{"a": 1}']


def test_local_errors(tmp_path: Path):
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 100)

    async def read(path: str, **kwargs) -> bytes:
        async with reader(**kwargs) as source:
            return await source.read_bytes(path)

    with pytest.raises(SourceNotFoundError, match="missing.json"):
        asyncio.run(read(str(tmp_path / "missing.json")))
    with pytest.raises(SourceNotFoundError, match="IsADirectoryError"):
        asyncio.run(read(str(tmp_path)))
    with pytest.raises(SourceUnavailableError, match="100 bytes or more, over the 50-byte"):
        asyncio.run(read(str(big), max_bytes=50))
    with pytest.raises(UnsupportedPathError):
        asyncio.run(read("ftp://host/x.json"))


class FakeBlobContext:
    """Stands in for blobfile's context: what the blob path does with blobfile's answers."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.opened: list[str] = []

    def BlobFile(self, path: str, mode: str, streaming: bool):  # noqa: N802 (blobfile's name)
        self.opened.append(path)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        if self.outcome == "slow":
            time.sleep(0.3)
        if self.outcome == "dribble":
            return Dribble()
        return io.BytesIO(b'{"blob": 1}')


class Dribble(io.RawIOBase):
    """A blob that sends a byte every 20 ms, for ever; `left` is set once its reader closes it."""

    left = threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        time.sleep(0.02)
        return b"x"

    def close(self) -> None:
        Dribble.left.set()
        super().close()


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (None, b'{"blob": 1}'),
        (FileNotFoundError("No such file: az://acct/c/0/1.json"), SourceNotFoundError),
        (ConnectionResetError("reset by peer"), SourceUnavailableError),
        ("slow", SourceTimeoutError),
    ],
)
def test_blob_paths_read_in_a_thread(outcome, expected):
    fake = FakeBlobContext(outcome)

    async def main() -> bytes:
        async with reader(timeout_s=0.1, retries=0) as source:
            source._blob_context = fake
            return await source.read_bytes("az://acct/c/0/1.json")

    if isinstance(expected, bytes):
        assert asyncio.run(main()) == expected
    else:
        with pytest.raises(expected, match="az://acct/c/0/1.json"):
            asyncio.run(main())
    assert fake.opened == ["az://acct/c/0/1.json"]


def test_a_dribbling_blob_is_left_at_the_deadline():
    fake = FakeBlobContext("dribble")

    async def main() -> bytes:
        async with reader(timeout_s=0.2, retries=0) as source:
            source._blob_context = fake
            return await source.read_bytes("az://acct/c/0/1.json")

    Dribble.left.clear()
    with pytest.raises(SourceTimeoutError, match="az://acct/c/0/1.json"):
        asyncio.run(main())
    assert Dribble.left.wait(30)  # the pool's thread stopped reading and closed it


def test_hf_offline_is_unavailable_naming_the_path():
    # tests/conftest.py sets HF_HUB_OFFLINE=1: huggingface_hub refuses before any network.
    async def main() -> bytes:
        async with reader() as source:
            return await source.read_bytes("hf://datasets/org/name/0/1.json")

    with pytest.raises(SourceUnavailableError) as caught:
        asyncio.run(main())
    assert "hf://datasets/org/name/0/1.json" in str(caught.value)
    assert "OfflineModeIsEnabled" in str(caught.value)
