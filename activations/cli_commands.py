"""The package's commands as the `neurons` command line runs them: collate, merge, explain,
score, push and the Hub's datasets, with their arguments, a collation's progress file, and how
any command runs (commands.run_command). The command line imports them from here, not from the
rooms that hold them. A room whose import is slow (torch, huggingface_hub) is imported when its
command runs or its arguments are added, so that a command that needs none of it starts fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activations.collate.__main__ import collate_command
from activations.collate.config import add_collate_arguments
from activations.collate.progress import ProgressFile
from activations.commands import run_command
from activations.publish.names import DEFAULT_LICENSE, HUB_TAG

if TYPE_CHECKING:
    from activations.publish.listing import HubDataset
    from activations.publish.upload import PushResult

__all__ = [
    "run_command", "add_collate_arguments", "collate_command", "merge_files", "ProgressFile",
    "add_explain_arguments", "add_score_arguments", "explain_command", "score_command",
    "push", "hub_datasets", "registration_module", "DEFAULT_LICENSE", "HUB_TAG",
]  # fmt: skip


def merge_files(paths: list[str | os.PathLike], out: str | os.PathLike, overwrite: bool) -> Path:
    """Collated files over disjoint documents (or layers) merged into `out` (collate.merge)."""
    from activations.collate.merge import merge_files

    return merge_files(paths, out, overwrite=overwrite)


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    """`neurons explain`'s arguments (explanations.command)."""
    from activations.explanations.command import add_explain_arguments

    add_explain_arguments(parser)


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    """`neurons score`'s arguments (explanations.command)."""
    from activations.explanations.command import add_score_arguments

    add_score_arguments(parser)


def explain_command(args: argparse.Namespace) -> int:
    """Explain and score a dataset's neurons, resumably (explanations.command)."""
    from activations.explanations.command import explain_command

    return explain_command(args)


def score_command(args: argparse.Namespace) -> int:
    """Score a text as a neuron's explanation (explanations.command)."""
    from activations.explanations.command import score_command

    return score_command(args)


def push(path: str | os.PathLike, repo_id: str, **options: Any) -> PushResult:
    """A collated file to a Hub dataset repo in the published layout, with its card
    (publish.push: private=, allow_existing=, license=, max_shard_bytes=, commit_message=)."""
    from activations.publish import push

    return push(path, repo_id, **options)


def hub_datasets(authors: list[str], following: str | None, search: str | None) -> list[HubDataset]:
    """The Hub's datasets of the published layout (publish.hub_datasets)."""
    from activations.publish import hub_datasets

    return hub_datasets(authors, following, search)


def registration_module(datasets: list[HubDataset]) -> str:
    """Python that registers the datasets, for --register FILE (publish.registration_module)."""
    from activations.publish import registration_module

    return registration_module(datasets)
