"""What every request passes first, whatever its client does (a pure ASGI middleware):

- the Host header must name this server (a loopback server is otherwise open to DNS
  rebinding): 400 otherwise;
- the body is counted as it streams, not only by its Content-Length: 413 at the limit;
- a body that stops coming is answered 408 after `body_timeout_s`;
- a client that disconnects cancels its request's work (queued model work is dropped);
- an unexpected error is a JSON 500 on a connection that stays usable.

Slow headers are the protocol's to bound (see protocol.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

log = logging.getLogger("activation_server")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Refused(Exception):
    """The request is refused before the app answers: status and detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# host[:port] or [IPv6]:port, whole: anything else is compared as it is (and refused), so that
# `[::1]evil.com` or `localhost:x` is not taken for an allowed host
_HOST_PORT = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::[0-9]{1,5})?")


def _host_of(scope: dict) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            match = _HOST_PORT.fullmatch(host)
            return match.group(1) if match else host
    return ""


class RequestGuard:
    def __init__(
        self,
        app: Callable,
        max_body_bytes: int,
        body_timeout_s: float,
        allowed_hosts: Iterable[str],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            self._check_host(scope)
            self._check_declared_length(scope)
        except _Refused as refused:
            await _answer(send, refused.status, refused.detail, close=True)
            return
        messages: asyncio.Queue[Message] = asyncio.Queue()

        async def queued_receive() -> Message:
            return await messages.get()

        app = asyncio.ensure_future(self.app(scope, queued_receive, tracked_send))
        reader = asyncio.ensure_future(self._read(receive, messages, app))
        try:
            await app
        except asyncio.CancelledError:
            if not app.cancelled():  # this request itself is cancelled: the server stops
                app.cancel()
                raise
            refused = reader.exception() if reader.done() and not reader.cancelled() else None
            if isinstance(refused, _Refused) and not started:
                await _answer(send, refused.status, refused.detail, close=True)
            # else the client has gone: there is no one to answer
        except Exception as error:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if not started:
                detail = f"internal error ({type(error).__name__}); the server keeps running"
                await _answer(send, 500, detail, close=False)
        finally:
            reader.cancel()

    def _check_host(self, scope: dict) -> None:
        if "*" in self.allowed_hosts:
            return
        host = _host_of(scope)
        if host not in self.allowed_hosts:
            allowed = ", ".join(sorted(self.allowed_hosts))
            raise _Refused(
                400,
                f"host {host!r} is not served here; allowed hosts: {allowed} "
                "(neurons serve --allowed-host adds others)",
            )

    def _check_declared_length(self, scope: dict) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                text = value.decode("latin-1")
                if not text.isdigit() or int(text) > self.max_body_bytes:
                    raise _Refused(413, self._too_large())

    def _too_large(self) -> str:
        return f"request body over the limit of {self.max_body_bytes} bytes"

    async def _read(self, receive: Receive, messages: asyncio.Queue, app: asyncio.Future) -> None:
        """Read the request as it comes and hand it to the app; afterwards wait for the client
        to go, and if it goes before its answer is done, cancel the app's work."""
        size, more = 0, True
        try:
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.body_timeout_s)
                except asyncio.TimeoutError:
                    raise _Refused(
                        408, f"the request body did not arrive within {self.body_timeout_s:g} s"
                    ) from None
                if message["type"] == "http.disconnect":
                    await messages.put(message)
                    app.cancel()
                    return
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    raise _Refused(413, self._too_large())
                more = message.get("more_body", False)
                await messages.put(message)
            message = await receive()  # returns when the client goes or the answer is sent
            await messages.put(message)
            if message["type"] == "http.disconnect" and not app.done():
                app.cancel()
        except _Refused:
            app.cancel()
            raise


async def _answer(send: Send, status: int, detail: str, close: bool) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
