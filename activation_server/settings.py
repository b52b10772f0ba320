"""Server settings, with safe defaults: loopback only, no CORS, bounded requests and queues."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list)
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
    upstream_timeout_s: float = 10.0
    device: str = "cpu"
