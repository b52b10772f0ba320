"""What the routes share, made once per app: settings, models (each with its one worker thread),
the pools of blocking work, and the record sources."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from activation_server.answers import WarmAnswers
from activation_server.settings import ServerSettings
from activations.explanations.search import ExplanationIndex
from activations.explanations.service import Explanations
from activations.models.pool import ModelPool
from activations.pools import Pools
from activations.records.source import RecordSources, SourceSettings
from activations.search.searches import Searches
from activations.weights.views import WeightViews


@dataclass
class Services:
    settings: ServerSettings
    models: ModelPool
    pools: Pools
    sources: RecordSources
    answers: WarmAnswers
    searches: Searches
    weights: WeightViews
    explanations: Explanations
    explanation_index: ExplanationIndex

    @classmethod
    def create(cls, settings: ServerSettings) -> Services:
        models = ModelPool(
            settings.device,
            settings.max_tokens_per_request,
            queue_size=settings.live_queue_size,
            micro_batch_size=settings.micro_batch_size,
            micro_batch_wait_s=settings.micro_batch_wait_s,
            max_model_bytes=int(settings.max_model_gb * 2**30),
        )
        pools = Pools()
        source_settings = SourceSettings(
            cache_size=settings.record_cache_size,
            max_context=settings.max_context,
            upstream_timeout_s=settings.upstream_timeout_s,
            max_example_tokens=settings.max_example_tokens,
        )
        sources = RecordSources(models, source_settings, pools)
        answers = WarmAnswers(settings.record_cache_size)
        searches = Searches(models, sources, pools)
        explanations = Explanations(sources, models)
        return cls(
            settings, models, pools, sources, answers, searches, WeightViews(models),
            explanations, ExplanationIndex(),
        )  # fmt: skip

    async def stop(self) -> None:
        """Without waiting on work that hangs: queued work fails, threads are daemons."""
        self.models.stop()
        self.pools.shutdown()
        self.answers.clear()
        await self.sources.close()
        await self.explanations.close()


async def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency; async, so that FastAPI calls it in the event
    loop rather than handing it to a worker thread on every request)."""
    return request.app.state.services
