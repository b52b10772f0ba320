"""What the routes share, made once per app: settings, models, the live queue, record sources."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from activation_server.runners import MicroBatcher
from activation_server.settings import ServerSettings
from activations.models.pool import ModelPool
from activations.records.source import RecordSources, SourceSettings


@dataclass
class Services:
    settings: ServerSettings
    models: ModelPool
    batcher: MicroBatcher
    sources: RecordSources

    @classmethod
    def create(cls, settings: ServerSettings) -> Services:
        models = ModelPool(settings.device, settings.max_tokens_per_request)
        source_settings = SourceSettings(
            cache_size=settings.record_cache_size,
            max_context=settings.max_context,
            upstream_timeout_s=settings.upstream_timeout_s,
        )
        return cls(settings, models, MicroBatcher(settings), RecordSources(models, source_settings))

    async def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        await self.sources.close()


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    return request.app.state.services
