"""Server settings, with safe defaults: loopback only, bounded requests, queues and waits."""

from __future__ import annotations

from pydantic import BaseModel, Field

from registry.builtin import EMBEDDED_MODEL

# Host headers of this machine's own addresses ("0.0.0.0" is what neuron-explainer's viewer
# calls by default); DNS rebinding needs a name the attacker controls, which these are not.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1", "0.0.0.0"]
# Pages that may call the API from a browser: any port of this machine, as neuron-explainer's
# server allows (its viewer runs on localhost:1234).
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1)(:\d+)?"


class ServerSettings(BaseModel):
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
    max_tokens_per_request: int = 1024
    """Texts of POST /activations longer than this are refused with 413."""
    max_texts_per_request: int = 16
    max_body_bytes: int = 1_000_000
    live_queue_size: int = 64
    """Live requests waiting for the model beyond this are refused with 503."""
    micro_batch_size: int = 8
    micro_batch_wait_s: float = 0.005
    record_cache_size: int = 4096
    max_context: int = 64
    """Tokens shown on each side of an example's max (?context=N)."""
    max_example_tokens: int = 32_768
    """Tokens the model runs for one record's example values (?activations=true), at most."""
    upstream_timeout_s: float = 10.0
    max_model_gb: float = 4.0
    """Models up to this size (float32 weights) run for example values and to locate maxima
    the file does not store; a larger one (OLMo-7B: 28 GB) runs only when asked live."""
    device: str = "cpu"
    debugger_model: str = EMBEDDED_MODEL
    """The model TDB's inference routes at the root debug (/tdb/{short_name}/... name any)."""
