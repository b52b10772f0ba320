"""What the debugger says when a request cannot be answered as asked."""

from __future__ import annotations

from activations.models.live import LiveRequestError


class DebuggerRequestError(LiveRequestError):
    """A node, layer, head or token the model does not have (said with what exists)."""


class DebuggerInputError(ValueError):
    """A request the debugger cannot answer as asked (a target that is not one token, a token
    index outside the prompt, a trace, loss or scalar it does not compute); says what is valid."""
