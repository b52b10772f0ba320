"""Every error is an answer: a JSON body whose `detail` says what was wrong, never a traceback.

One table maps the errors of every layer below to a status. Unless the server is told to show
them, absolute paths of its own files are cut to their last part in what it says (`…/x.parquet`):
a client learns which file, not where the server keeps it. (Unexpected errors are the request
guard's, guard.py: a JSON 500 on a connection that stays usable.)
"""

from __future__ import annotations

import logging
import re
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from activations.errors import (
    DebuggerInputError,
    DebuggerUnsupportedError,
    ExplanationError,
    LiveRequestError,
    ModelBusyError,
    PoolBusyError,
    PoolTimeoutError,
    RecordNotFoundError,
    SearchError,
    UpstreamError,
    UpstreamTimeoutError,
    WeightsPendingError,
)
from registry.errors import UnknownDatasetError, UnknownModelError
from registry.metadata import NeuronDatasetMetadata

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger("activation_server")


class TooManyTokensError(ValueError):
    """A text is longer than the server's per-request token limit."""


# First match wins: subclasses before their bases.
STATUS: list[tuple[type[BaseException], int]] = [
    (UnknownDatasetError, 404),
    (UnknownModelError, 404),
    (RecordNotFoundError, 404),
    (LiveRequestError, 404),
    (SearchError, 422),
    (DebuggerInputError, 422),
    (DebuggerUnsupportedError, 422),
    (ExplanationError, 422),
    (TooManyTokensError, 413),
    (ModelBusyError, 503),
    (WeightsPendingError, 503),
    (PoolBusyError, 503),
    (PoolTimeoutError, 504),
    (UpstreamTimeoutError, 504),
    (UpstreamError, 502),
]


def status_of(error: BaseException) -> int | None:
    return next((status for kind, status in STATUS if isinstance(error, kind)), None)


# An absolute path: a slash not after a word character, ':' or '/' (so not a URL's path), then
# folders; group 1 is its last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~$])/(?:[^\s/'\"`()]+/)+([^\s/'\"`()]+)")


# A file:// URL (a local path too): group 1 is its last part.
_FILE_URL = re.compile(r"file://(?:localhost)?/(?:[^\s/'\"`()]+/)*([^\s/'\"`()]+)")


def hide_paths(text: str) -> str:
    """Absolute local paths and file:// URLs cut to their last part; other URLs
    (scheme://host/...) are kept."""
    return _ABSOLUTE_PATH.sub(r"…/\1", _FILE_URL.sub(r"…/\1", text))


def shown_metadata(metadata: NeuronDatasetMetadata, expose_paths: bool) -> NeuronDatasetMetadata:
    """A registered dataset as the server shows it (catalog, records): its own paths (dataset,
    corpus) cut to their last part unless it is told to show them."""
    if expose_paths:
        return metadata
    update = {
        field: hide_paths(value)
        for field in ("neuron_dataset_path", "corpus")
        if isinstance(value := getattr(metadata, field), str)
    }
    return metadata.model_copy(update=update)


def shown_strings(answer: T, expose_paths: bool) -> T:
    """An answer's own strings (`dataset`, `note`) with this server's paths cut to their last
    part, as every other answer shows them, unless it is told to show them."""
    if expose_paths:
        return answer
    update = {
        name: hide_paths(value)
        for name in ("dataset", "note")
        if isinstance(value := getattr(answer, name, None), str)
    }
    return answer.model_copy(update=update)


# A 503 says when to ask again (RFC 9110 Retry-After, seconds): weight views take a while to
# compute; a full queue or pool frees up at once.
RETRY_AFTER_S: dict[type[BaseException], int] = {WeightsPendingError: 5}


def _json(status: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def known_error_response(exc: BaseException, expose_paths: bool = False) -> JSONResponse | None:
    """The answer to an error of a known kind (STATUS), as its handler gives it; None for any
    other."""
    status = status_of(exc)
    if status is None:
        return None
    detail = str(exc)
    retry = next((s for kind, s in RETRY_AFTER_S.items() if isinstance(exc, kind)), 1)
    headers = {"Retry-After": str(retry)} if status == 503 else None
    return _json(status, detail if expose_paths else hide_paths(detail), headers)


def install_error_handlers(app: FastAPI, expose_paths: bool = False) -> None:
    async def known(request: Request, exc: Exception):
        return known_error_response(exc, expose_paths)

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
