"""`neurons push` (a collated file to a Hugging Face Hub dataset repo, with its card) and
`neurons datasets --hub` (the Hub's datasets of that layout, and a module registering them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from activations.cli_commands import (
    DEFAULT_LICENSE,
    HUB_TAG,
    hub_datasets,
    push,
    registration_module,
)


def add_publish_commands(command: Callable, datasets: argparse.ArgumentParser) -> None:
    """Add `push`, and `--hub` with its options to `datasets` (whose table it leaves as is)."""
    push = command(
        "push", cmd_push, "push a collated file to a Hugging Face Hub dataset repo, with its card"
    )
    push.add_argument("file", help="a file `neurons collate` (or `neurons merge`) wrote")
    push.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the dataset repo")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument(
        "--allow-existing",
        action="store_true",
        help="push into a repo that holds other files (one commit on top; old data/ shards "
        "removed in it)",
    )
    push.add_argument("--license", default=DEFAULT_LICENSE, help="the card's license")
    push.add_argument(
        "--max-shard-mb",
        type=float,
        metavar="MB",
        help="split the records into shards of about MB each (rewritten: slower; 500 as "
        "datasets' push_to_hub); default: the file itself, one shard",
    )
    push.add_argument("--message", help="the commit message")
    datasets.add_argument(
        "--hub",
        action="store_true",
        help=f"list the Hub's datasets tagged {HUB_TAG} (as `neurons push` writes) instead",
    )
    datasets.add_argument(
        "--author", action="append", default=[], help="with --hub: only this owner's (repeatable)"
    )
    datasets.add_argument("--following", metavar="USER", help="with --hub: of those USER follows")
    datasets.add_argument("--search", help="with --hub: names containing this")
    datasets.add_argument(
        "--save",
        metavar="FILE",
        help="with --hub: write a module registering them, for --register FILE",
    )
    registered = datasets.get_default("func")

    def cmd_datasets(args: argparse.Namespace) -> int:
        if args.hub:
            return cmd_hub_datasets(args)
        if args.author or args.following or args.search or args.save:
            raise ValueError("--author, --following, --search and --save list the Hub: add --hub")
        return registered(args)

    datasets.set_defaults(func=cmd_datasets)


def cmd_push(args: argparse.Namespace) -> int:
    if args.max_shard_mb is not None and args.max_shard_mb <= 0:
        raise ValueError(f"--max-shard-mb must be positive, not {args.max_shard_mb}")
    shard_bytes = int(args.max_shard_mb * 2**20) if args.max_shard_mb else None
    result = push(
        args.file, args.repo, private=args.private, allow_existing=args.allow_existing,
        license=args.license, max_shard_bytes=shard_bytes,
        commit_message=args.message,
    )  # fmt: skip
    for note in result.notes:
        print(f"note: {note}")
    print(
        f"pushed {args.file} to {result.path} (commit {result.commit[:12]}, "
        f"{len(result.files)} files, {result.bytes / 2**20:.1f} MB)"
    )
    print(f"read it back: registry.register_glu_dataset(NAME, {result.path!r}, model=...)")
    return 0


def cmd_hub_datasets(args: argparse.Namespace) -> int:
    from activation_server.cli import format_table

    found = hub_datasets(args.author, args.following, args.search)
    if args.json:
        dumped = [
            {"repo_id": d.repo_id, "path": d.path, "last_modified": d.last_modified, **d.fields}
            for d in found
        ]
        sys.stdout.write(orjson.dumps(dumped, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        rows = [
            {"repo": d.repo_id, "model": d.fields.get("model"), "corpus": d.fields.get("corpus"),
             "layers": d.fields.get("layers"), "neurons": d.fields.get("n_neurons"),
             "top_k": d.fields.get("top_k"), "modified": (d.last_modified or "")[:10]}
            for d in found
        ]  # fmt: skip
        print(format_table(rows, args.wide))
    if args.save:
        Path(args.save).write_text(registration_module(found))
        print(f"\nwrote {args.save}: `neurons serve --register {args.save}` serves them all")
    return 0
