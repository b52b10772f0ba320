"""The FastAPI app: its services, middleware and error handlers, and the routes of routes/."""

from __future__ import annotations

import gc
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from activation_server.answers import RecordAnswerMiddleware
from activation_server.errors import install_error_handlers
from activation_server.guard import RequestGuard
from activation_server.limits import InFlightLimit
from activation_server.routes import (
    catalog,
    debugger,
    explanations,
    intervene,
    live,
    neuron_explainer,
    progress,
    records,
    search,
    viewer,
    weights,
)
from activation_server.services import Services
from activation_server.settings import ServerSettings
from activations.session import use_steady_memory_pool

# Every group of routes: a module of routes/ with a `router`. A new group is one more entry.
ROUTES = [
    catalog, records, neuron_explainer, debugger, intervene, explanations, live, search, weights,
    progress, viewer,
]  # fmt: skip


def served_hosts(settings: ServerSettings) -> list[str]:
    """The Host headers to answer: the configured ones, and the address bound to where it is
    one address."""
    hosts = list(settings.allowed_hosts)
    if settings.host not in ("0.0.0.0", "::", ""):
        hosts.append(settings.host)
    return hosts


# How long a thread holds the interpreter before another may take it (Python's default: 5 ms):
# shorter, the event loop gets it back sooner from threads decoding records, and /health and
# small answers wait less behind them.
SWITCH_INTERVAL_S = 0.001
# Objects allocated (less those freed) between two collections of the youngest generation
# (Python's default: 700). A cold record is hundreds of short-lived objects, and 16 of them in
# flight set off a collection every few requests, whose survivors grow the older generations
# until a full collection walks every object of the process (a sixth of a cold lookup's time
# in a profile under 16 clients); at 10,000 they are mostly freed before a collection.
GC_YOUNG_THRESHOLD = 10_000


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    use_steady_memory_pool()
    shared = Services.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # before listening (about 0.4 s): a first hf:// record would otherwise wait for them
        await shared.workbench.warm_up()
        yield
        await shared.stop()

    app = FastAPI(
        title="GLU neuron activation server",
        description="Neuron records and live activations of gated (GLU) language models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = shared
    install_error_handlers(app, settings.expose_paths)
    # the last added runs first: the guard sees every request, CORS headers go on its answers;
    # kept answers are sent after both
    app.add_middleware(
        RecordAnswerMiddleware,
        answers=shared.answers,
        plain=lambda scope: records.plain_record_answer(shared, scope),
    )
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight_per_client)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        allowed_hosts=served_hosts(settings),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=settings.cors_origin_regex,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
    )

    for module in ROUTES:
        app.include_router(module.router)
    viewer.mount_static(app)
    return app
