"""Every error is an answer: a JSON body whose `detail` says what was wrong, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from activations.glu_reader import CorruptDatasetError, NeuronOutOfRangeError
from activations.live import LiveRequestError
from registry.errors import UnknownDatasetError, UnknownModelError

log = logging.getLogger("activation_server")


class TooManyTokensError(ValueError):
    """A text is longer than the server's per-request token limit."""


class ServerBusyError(RuntimeError):
    """The live queue is full."""


class UpstreamError(RuntimeError):
    """A dataset source failed; status is 502 (bad or down) or 504 (timed out)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


STATUS: list[tuple[type[BaseException], int]] = [
    (UnknownDatasetError, 404),
    (UnknownModelError, 404),
    (NeuronOutOfRangeError, 404),
    (LiveRequestError, 404),
    (TooManyTokensError, 413),
    (ServerBusyError, 503),
    (CorruptDatasetError, 502),
]


def _json(status: int, detail: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    for exc_type, status in STATUS:

        async def handler(request: Request, exc: Exception, status: int = status):
            return _json(status, str(exc))

        app.add_exception_handler(exc_type, handler)

    @app.exception_handler(UpstreamError)
    async def upstream(request: Request, exc: UpstreamError):
        return _json(exc.status, str(exc))

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
