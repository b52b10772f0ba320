"""Publishing a collated file to a Hugging Face Hub dataset repo in the published layout, with
its card (`neurons push`), and finding the datasets of that layout others pushed
(`neurons datasets --hub`). Its parts are imported when first named (they import pyarrow,
torch and huggingface_hub): `from activations.publish import push`."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "push": "upload", "PushResult": "upload", "HubPushError": "upload",
    "PublishError": "shards", "stage_shards": "shards",
    "hub_datasets": "listing", "HubDataset": "listing", "registration_module": "listing",
    "card_text": "card",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'activations.publish' has no attribute {name!r}")
    return getattr(importlib.import_module(f"activations.publish.{_WHERE[name]}"), name)
