"""Server settings, with safe defaults: loopback only, bounded requests, queues and waits."""

from __future__ import annotations

from pydantic import Field

from activations.session import SessionSettings
from registry.builtin import EMBEDDED_MODEL

# Host headers of this machine's own addresses ("0.0.0.0" is what neuron-explainer's viewer
# calls by default); DNS rebinding needs a name the attacker controls, which these are not.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1", "0.0.0.0"]
# Pages that may call the API from a browser: any port of this machine, as neuron-explainer's
# server allows (its viewer runs on localhost:1234).
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1)(:\d+)?"


class ServerSettings(SessionSettings):
    """The server's own settings; the models', sources' and searches' are SessionSettings's
    (activations.session), with the same defaults as the Python API's."""

    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed besides this machine's own (cors_origin_regex)."""
    cors_origin_regex: str | None = LOCAL_ORIGINS
    allowed_hosts: list[str] = Field(default_factory=lambda: list(LOOPBACK_HOSTS))
    """Host headers answered ("*": any); others get 400, against DNS rebinding."""
    expose_paths: bool = False
    """Show the server's absolute file paths in errors and /datasets (else only their last part)."""
    header_timeout_s: float = 10.0
    """A connection whose request headers are not complete by then is closed."""
    body_timeout_s: float = 15.0
    """A request body that stops arriving for this long is answered 408."""
    keep_alive_s: float = 30.0
    """Idle keep-alive connections are closed after this (clients' pools keep them up to it)."""
    max_texts_per_request: int = 16
    max_body_bytes: int = 1_000_000
    max_in_flight_per_client: int = 32
    """Requests of one client (address) to one group of routes at a time; more are answered
    503 with Retry-After at once (0: no limit)."""
    debugger_model: str = EMBEDDED_MODEL
    """The model TDB's inference routes at the root debug (/tdb/{short_name}/... name any)."""
