"""Every error is an answer: a JSON body whose `detail` says what was wrong, never a traceback.

One table maps the errors of every layer below to a status.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from activations.models.live import LiveRequestError
from activations.records.errors import RecordNotFoundError, UpstreamError, UpstreamTimeoutError
from registry.errors import UnknownDatasetError, UnknownModelError

log = logging.getLogger("activation_server")


class TooManyTokensError(ValueError):
    """A text is longer than the server's per-request token limit."""


class ServerBusyError(RuntimeError):
    """The live queue is full."""


# First match wins: subclasses before their bases.
STATUS: list[tuple[type[BaseException], int]] = [
    (UnknownDatasetError, 404),
    (UnknownModelError, 404),
    (RecordNotFoundError, 404),
    (LiveRequestError, 404),
    (TooManyTokensError, 413),
    (ServerBusyError, 503),
    (UpstreamTimeoutError, 504),
    (UpstreamError, 502),
]


def status_of(error: BaseException) -> int | None:
    return next((status for kind, status in STATUS if isinstance(error, kind)), None)


def _json(status: int, detail: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    async def known(request: Request, exc: Exception):
        return _json(status_of(exc) or 500, str(exc))

    for exc_type, _ in STATUS:
        app.add_exception_handler(exc_type, known)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return _json(422, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _json(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json(500, f"internal error ({type(exc).__name__}); the server keeps running")
