"""The neuron viewer: one static page that reads the JSON routes, so it needs no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
INDEX = STATIC / "index.html"


def install_viewer(app: FastAPI) -> None:
    """Serve the page at `/` and at every shareable neuron URL, its assets under `/static`.

    The page routes stay out of the OpenAPI schema: they are HTML, not API."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def viewer_home() -> FileResponse:
        return FileResponse(INDEX)

    @app.get("/neuron/{short_name}/{dst}/{layer}/{neuron}", include_in_schema=False)
    async def viewer_neuron(short_name: str, dst: str, layer: str, neuron: str) -> FileResponse:
        # the page itself validates and shows the server's message for a bad neuron
        return FileResponse(INDEX)
