"""`neurons datasets` and `neurons models`: the registry as a table or JSON."""

from __future__ import annotations

import argparse
import sys

import orjson

from registry.registry import get_all_models, get_all_neuron_dataset_metadata


def execute(args: argparse.Namespace) -> int:
    """Load the user's register modules, run the command, and turn expected errors into a
    one-line message and exit status 2 (never a traceback)."""
    from registry.plugins import PluginError, load_register_modules

    try:
        load_register_modules(getattr(args, "register", []))
        return args.func(args)
    except (PluginError, LookupError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurons: interrupted (a collation resumes from its checkpoint with --resume)")
        return 130


def format_table(rows: list[dict[str, str]]) -> str:
    """Left-aligned columns under a header, for terminals."""
    if not rows:
        return "(none)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c) or "")) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        lines.append("  ".join(str(row.get(c) or "").ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


def _print(records: list, args: argparse.Namespace, columns: list[str]) -> int:
    if args.json:
        dumped = [r.model_dump(mode="json", by_alias=True) for r in records]
        sys.stdout.write(orjson.dumps(dumped, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        dumped = [r.model_dump(mode="json") for r in records]
        rows = [{c: str(d[c] or "") for c in columns} for d in dumped]
        print(format_table(rows))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    records = get_all_neuron_dataset_metadata()
    if args.model:
        records = [r for r in records if r.short_name == args.model or r.model == args.model]
    if args.dst:
        records = [r for r in records if r.derived_scalar_type.value == args.dst]
    columns = [
        "short_name",
        "derived_scalar_type",
        "format",
        "model",
        "corpus",
        "neuron_dataset_path",
    ]
    return _print(records, args, columns)


def cmd_models(args: argparse.Namespace) -> int:
    columns = ["short_name", "hf_path_or_id", "gguf_file", "revision", "user_visible_name"]
    return _print(get_all_models(), args, columns)


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    datasets = subparsers.add_parser(
        "datasets", parents=[common], help="list registered neuron datasets"
    )
    datasets.add_argument("--json", action="store_true", help="print JSON instead of a table")
    datasets.add_argument("--model", help="only datasets of this model short name")
    datasets.add_argument("--dst", help="only datasets of this derived scalar type")
    datasets.set_defaults(func=cmd_datasets)

    models = subparsers.add_parser("models", parents=[common], help="list registered models")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=cmd_models)
