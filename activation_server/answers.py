"""Record answers before the router. Warm: a record already answered to a GET is sent again as
the same bytes, without routing and validating the request anew, for as long as what it was
made from is unchanged (the same registry entry and, for files on this machine, the same
files). A warm neuron then costs the HTTP exchange alone: the routing and parameter checks of a
framework cost more than the record does once it is in memory. Cold: a plain record GET (no
query) is made by the records route's own function, without the router.

Only answers of 200 are kept, and only those a source says it can vouch for (`version`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from activations.session import LruCache

PREFIX = "/neuron_record/"
MAX_BYTES = 256 * 2**20  # the default of ServerSettings.record_cache_mb


def _key(scope: dict) -> tuple[str, bytes]:
    return scope["path"], scope.get("query_string", b"")


class WarmAnswers:
    """Answer bytes by request path and query, each with a check that it still holds."""

    def __init__(self, size: int, max_bytes: int = MAX_BYTES) -> None:
        self._cache: LruCache[tuple[str, bytes], tuple[bytes, Callable[[], bool]]] = LruCache(
            size, max_weight=max_bytes
        )

    def put(self, scope: dict, body: bytes, still_holds: Callable[[], bool]) -> None:
        self._cache.put(_key(scope), (body, still_holds), weight=len(body))

    def get(self, scope: dict) -> bytes | None:
        found = self._cache.get(_key(scope))
        if found is None:
            return None
        body, still_holds = found
        return body if still_holds() else None

    def clear(self) -> None:
        self._cache.clear()


class RecordAnswerMiddleware:
    """Answers a plain record GET before the router (inside the request guard and CORS, so
    that the Host check and CORS headers apply to it as to any answer): a kept answer as its
    bytes, else `plain` (routes/records.py) makes it; anything it does not answer goes on to
    the app."""

    def __init__(
        self,
        app: Callable,
        answers: WarmAnswers,
        plain: Callable[[dict], Awaitable[Any | None]] | None = None,
    ) -> None:
        self.app = app
        self.answers = answers
        self.plain = plain

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"][:15] == PREFIX:
            body = self.answers.get(scope)
            if body is not None:
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            response = await self.plain(scope) if self.plain is not None else None
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
