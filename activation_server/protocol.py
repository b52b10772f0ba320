"""uvicorn's HTTP/1.1 protocol with a deadline on request headers: a client that opens a
connection and sends its headers slowly (or not at all) is cut off, instead of holding a socket
for minutes. (uvicorn bounds only the idle time between requests.)"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """Request headers must be complete within `header_timeout_s` of the connection opening or
    of the previous answer."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers and self._header_timer is None:
            self._arm()  # the first bytes of a request on a kept-alive connection
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a new request's headers are complete
            self._awaiting_headers = False
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._awaiting_headers = True  # the keep-alive timer runs until the next bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class with this deadline (uvicorn takes a class)."""
    return type("GuardedH11", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})
