"""Requests in flight, per client and group of routes: beyond the limit a client's next request
is answered 503 at once (with Retry-After), not queued behind its others.

One client's 400 cold records at once held /health for 8 s: each waiting request costs the event
loop and the pools work that others wait behind. The group is a path's first part (`neuron_record`,
`activations`, `search`...), so that one route's load leaves a client's other requests their
share, and /health is never refused for another route's load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Message = dict[str, Any]
RETRY_AFTER_S = 1


def route_group(path: str) -> str:
    """/neuron_record/a/b/0/1 → neuron_record; / → ''."""
    return path.lstrip("/").split("/", 1)[0]


class InFlightLimit:
    """A pure ASGI middleware; `limit` requests of one client to one group at a time."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._in_flight: Counter[tuple[str, str]] = Counter()

    async def __call__(
        self,
        scope: dict,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("", 0))[0]
        key = (client, route_group(scope["path"]))
        if self._in_flight[key] >= self.limit:  # the event loop's thread only: no lock
            await _busy(send, self.limit, key[1])
            return
        self._in_flight[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]


async def _busy(send: Callable[[Message], Awaitable[None]], limit: int, group: str) -> None:
    detail = (
        f"{limit} requests of this client to /{group} are in flight already; ask again when "
        "one has been answered"
    )
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER_S),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
