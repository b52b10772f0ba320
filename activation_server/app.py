"""The FastAPI app: its services, middleware and error handlers, and the routes of routes/."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from activation_server.errors import install_error_handlers
from activation_server.routes import catalog, live, records, viewer
from activation_server.services import Services
from activation_server.settings import ServerSettings

# Every group of routes: a module of routes/ with a `router`. A new group is one more entry.
ROUTES = [catalog, records, live, viewer]


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    shared = Services.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await shared.start()
        yield
        await shared.stop()

    app = FastAPI(
        title="GLU neuron activation server",
        description="Neuron records and live activations of gated (GLU) language models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = shared
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse(
                status_code=413,
                content={
                    "detail": f"request body over the limit of {settings.max_body_bytes} bytes"
                },
            )
        return await call_next(request)

    for module in ROUTES:
        app.include_router(module.router)
    viewer.mount_static(app)
    return app
