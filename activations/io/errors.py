"""Why a record cannot be answered, in three kinds that every reader and source raises and the
server maps once: not found (404), the source failed (502) or timed out (504).

Messages are shown to users as they are: they name the dataset or file and the reason.
"""

from __future__ import annotations


class RecordError(Exception):
    """A record cannot be answered."""


class RecordNotFoundError(RecordError, LookupError):
    """No such neuron, record or dataset file."""


class NeuronOutOfRangeError(RecordNotFoundError):
    """The asked layer or neuron is not in the dataset; the message says the valid ranges."""


class UpstreamError(RecordError):
    """The source failed: down, refusing, too large, or not readable data."""


class UpstreamTimeoutError(UpstreamError):
    """The source gave no complete answer in time."""


class CorruptDatasetError(UpstreamError, ValueError):
    """A file is not readable Parquet (corrupted, truncated) or not laid out as expected."""


class DatasetLayoutError(CorruptDatasetError):
    """A file reads fine but its rows are not sorted by (layer, neuron) with N per layer."""


class MalformedRecordError(UpstreamError, ValueError):
    """A neuron-explainer record is not valid JSON or not in its shape."""

    def __init__(self, problems: list[str], source: str | None = None, max_shown: int = 5):
        self.problems = problems
        self.source = source
        where = f" at {source}" if source else ""
        shown = "; ".join(problems[:max_shown])
        more = len(problems) - max_shown
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(f"malformed neuron record{where}: {shown}")


def in_context(error: RecordError, context: str) -> RecordError:
    """The same kind of error, its message prefixed with what was being read."""
    kind = type(error)
    for base in (NeuronOutOfRangeError, RecordNotFoundError, UpstreamTimeoutError, UpstreamError):
        if isinstance(error, base):
            kind = base
            break
    return kind(f"{context}: {error}")
