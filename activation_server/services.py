"""What the routes share, made once per app: settings, the workbench (models, each with its one
worker thread; the pools of blocking work; the record sources, searches and weight views:
activations.session, the Python API's too) and the warm answers."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from activation_server.answers import WarmAnswers
from activation_server.settings import ServerSettings
from activations.session import (
    ExplanationIndex,
    Explanations,
    ModelPool,
    Pools,
    RecordSources,
    Searches,
    WeightViews,
    Workbench,
)


@dataclass
class Services:
    settings: ServerSettings
    workbench: Workbench
    answers: WarmAnswers

    @classmethod
    def create(cls, settings: ServerSettings) -> Services:
        return cls(
            settings,
            Workbench(settings),
            WarmAnswers(settings.record_cache_size, settings.record_cache_bytes),
        )

    @property
    def models(self) -> ModelPool:
        return self.workbench.models

    @property
    def pools(self) -> Pools:
        return self.workbench.pools

    @property
    def sources(self) -> RecordSources:
        return self.workbench.sources

    @property
    def searches(self) -> Searches:
        return self.workbench.searches

    @property
    def weights(self) -> WeightViews:
        return self.workbench.weight_views

    @property
    def explanations(self) -> Explanations:
        return self.workbench.explanations

    @property
    def explanation_index(self) -> ExplanationIndex:
        return self.workbench.explanation_index

    async def stop(self) -> None:
        """Without waiting on work that hangs: queued work fails, threads are daemons."""
        self.answers.clear()
        await self.workbench.close()


async def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency; async, so that FastAPI calls it in the event
    loop rather than handing it to a worker thread on every request)."""
    return request.app.state.services
