"""The neuron viewer: static pages (ES modules, no build step) that read the JSON routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parents[1] / "static"
INDEX = STATIC / "index.html"
SEARCH = STATIC / "search.html"
CLASSES = STATIC / "classes.html"

# The page routes stay out of the OpenAPI schema: they are HTML, not API.
router = APIRouter(include_in_schema=False)


@router.get("/")
async def viewer_home() -> FileResponse:
    return FileResponse(INDEX)


@router.get("/neuron/{short_name}/{dst}/{layer}/{neuron}")
async def viewer_neuron(short_name: str, dst: str, layer: str, neuron: str) -> FileResponse:
    # the page itself validates and shows the server's message for a bad neuron
    return FileResponse(INDEX)


@router.get("/search")
async def viewer_search() -> FileResponse:
    # the search is in the query (?dataset=&dst=&text=&token=), read by the page itself
    return FileResponse(SEARCH)


@router.get("/plots/classes/{model}")
async def viewer_classes(model: str) -> FileResponse:
    # the page reads the model from its address and asks GET /classes/{model}
    return FileResponse(CLASSES)


def mount_static(app: FastAPI) -> None:
    """The pages' assets under /static."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
