"""What can go wrong explaining and scoring, each answered for what it is: bad input and
unsuitable models are the caller's to fix (4xx), a backend that fails or hangs is upstream
(502 / 504, naming it)."""

from __future__ import annotations

from activations.io.errors import UpstreamError, UpstreamTimeoutError


class ExplanationError(ValueError):
    """Bad input to explain or score (empty or over-long text, a neuron never active)."""


class NeverActiveError(ExplanationError):
    """The neuron (or quadrant) has no positive activation in the dataset."""


class UnsuitableModelError(ExplanationError):
    """The model cannot explain or simulate (no chat template, digits not single tokens)."""


class BackendError(UpstreamError):
    """The explainer / simulator backend failed or answered nothing usable."""


class BackendTimeoutError(BackendError, UpstreamTimeoutError):
    """The backend did not answer within its timeout."""
