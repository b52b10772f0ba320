"""Every error the activations package raises to its callers, in one place, by what it means to
them: what the server maps to a status (not found 404, bad request 422, busy 503, pending 202,
a source that failed 502 or timed out 504) and what a script catches. Each is defined in the
room that raises it; this names them for those outside."""

from __future__ import annotations

from activations.debugger.errors import DebuggerInputError, DebuggerRequestError
from activations.debugger.parts import DebuggerUnsupportedError
from activations.explanations.errors import ExplanationError
from activations.io.errors import (
    CorruptDatasetError,
    DatasetLayoutError,
    MalformedRecordError,
    NeuronOutOfRangeError,
    RecordError,
    RecordNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from activations.models.loaded import ModelUnavailableError
from activations.models.requests import LiveRequestError
from activations.models.worker import ModelBusyError
from activations.pools import PoolBusyError, PoolTimeoutError
from activations.search.answers import SearchError
from activations.weights.views import WeightsPendingError, WeightsUnavailableError

__all__ = [
    "CorruptDatasetError",
    "DatasetLayoutError",
    "DebuggerInputError",
    "DebuggerRequestError",
    "DebuggerUnsupportedError",
    "ExplanationError",
    "LiveRequestError",
    "MalformedRecordError",
    "ModelBusyError",
    "ModelUnavailableError",
    "NeuronOutOfRangeError",
    "PoolBusyError",
    "PoolTimeoutError",
    "RecordError",
    "RecordNotFoundError",
    "SearchError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "WeightsPendingError",
    "WeightsUnavailableError",
]
