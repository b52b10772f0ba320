"""GET /progress: the collations under way for registered datasets (the default one that
`neurons run` builds in the background, or any run writing a registered path), so that a page
opened before its records exist says how long they will take."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import Field

from activation_server.errors import hide_paths
from activations.api import progress_path, read_progress
from registry import get_all_neuron_dataset_metadata
from registry.metadata import CamelModel
from registry.paths import local_path

router = APIRouter(tags=["catalog"])
log = logging.getLogger("activation_server")


class CollationProgress(CamelModel):
    short_names: list[str] = Field(description="the registered datasets the run writes")
    path: str
    state: str = Field(description="checking the model and corpus, loading the model, "
                       "collating, writing the file, failed or stopped")  # fmt: skip
    model: str | None = None
    corpus: str | None = None
    documents_done: int | None = None
    documents_total: int | None = None
    tokens_per_s: float | None = None
    seconds_left: float | None = None
    partial: bool = Field(False, description="records over the documents so far are served")
    why: str | None = Field(None, description="why it failed or stopped")


@router.get("/progress", response_model=list[CollationProgress])
async def progress() -> list[CollationProgress]:
    """Each local dataset whose file a collation is writing, with how far it has come."""
    by_path: dict[str, list[str]] = {}
    for metadata in get_all_neuron_dataset_metadata():
        local = local_path(metadata.neuron_dataset_path)
        if local is not None and metadata.short_name not in by_path.get(local, []):
            by_path.setdefault(local, []).append(metadata.short_name)
    found = []
    for path, names in by_path.items():
        try:
            entry = _entry(path, names)
        except ValueError as error:  # a file that is not a collation's: skipped, and named
            shown = hide_paths(str(progress_path(path)))
            reason = hide_paths(str(error)).splitlines()[0]
            log.warning("GET /progress skips %s, not a collation's progress: %s", shown, reason)
            continue
        if entry is not None:
            found.append(entry)
    return found


def _entry(path: str, names: list[str]) -> CollationProgress | None:
    """The progress of one path's collation; ValueError where its file is not one (pydantic's
    ValidationError is one too)."""
    fields = read_progress(path)
    if fields is None:
        return None
    return CollationProgress(
        short_names=names,
        path=hide_paths(path),
        state=fields.get("state", "collating"),
        model=fields.get("model"),
        corpus=fields.get("corpus"),
        documents_done=fields.get("documents_done"),
        documents_total=fields.get("documents_total"),
        tokens_per_s=fields.get("tokens_per_s"),
        seconds_left=fields.get("seconds_left"),
        partial=fields.get("partial", False),
        why=fields.get("why"),
    )
