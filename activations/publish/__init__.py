"""Publishing a collated file to a Hugging Face Hub dataset repo in the published layout, with
its card (`neurons push`), and finding the datasets of that layout others pushed
(`neurons datasets --hub`)."""

from activations.publish.listing import HubDataset, hub_datasets, registration_module
from activations.publish.push import HubPushError, PushResult, push
from activations.publish.shards import PublishError

__all__ = [
    "HubDataset", "HubPushError", "PublishError", "PushResult", "hub_datasets", "push",
    "registration_module",
]  # fmt: skip
