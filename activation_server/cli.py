"""The `neurons` command: every subcommand, with user registrations loaded first."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from activation_server.publish_cli import add_publish_commands
from activation_server.settings import ServerSettings
from activations.cli_commands import (
    ProgressFile,
    add_collate_arguments,
    add_explain_arguments,
    add_score_arguments,
    collate_command,
    explain_command,
    merge_files,
    run_command,
    score_command,
)
from registry import get_all_models, get_all_neuron_dataset_metadata
from registry.plugins import REGISTER_ENV

DEFAULT_RUN_DOCS = 192  # about ten minutes on 2 CPU cores
DEFAULT_RUN_CHECKPOINT = 16  # documents between the background collation's partial records


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"import MODULE first so its registrations count (repeatable; also ${REGISTER_ENV})",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser = argparse.ArgumentParser(
        prog="neurons", description="Look inside the MLP neurons of gated language models."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help)
        sub.set_defaults(func=func)
        return sub

    datasets = command("datasets", cmd_datasets, "list registered neuron datasets")
    datasets.add_argument("--json", action="store_true", help="print JSON instead of a table")
    datasets.add_argument("--model", help="only datasets of this model short name")
    datasets.add_argument("--dst", help="only datasets of this derived scalar type")
    datasets.add_argument("--wide", action="store_true", help="show full paths, unshortened")
    models = command("models", cmd_models, "list registered models")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_publish_commands(command, datasets)
    add_collate_arguments(
        command(
            "collate",
            cmd_collate,
            "run a model over a corpus and write one GLU quadrant record per neuron (Parquet)",
        )
    )
    merge = command("merge", cmd_merge, "merge collated files over disjoint documents exactly")
    merge.add_argument("files", nargs="+")
    merge.add_argument("--out", required=True)
    merge.add_argument("--overwrite", action="store_true")
    _server_options(command("serve", cmd_serve, "serve records and live activations"))
    run = command(
        "run",
        cmd_run,
        "build the default dataset (embedded SmolLM2 over Shakespeare) if missing, then serve",
    )
    _server_options(run)
    run.add_argument("--max-docs", type=int, default=DEFAULT_RUN_DOCS)
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_RUN_CHECKPOINT,
        help="documents between the background collation's checkpoints (records so far)",
    )
    _explain_commands(command)
    return parser


def _explain_commands(command) -> None:
    add_explain_arguments(
        command("explain", cmd_explain, "explain and score neurons of a dataset (resumable)")
    )
    add_score_arguments(command("score", cmd_score, "score a text as a neuron's explanation"))


def cmd_explain(args: argparse.Namespace) -> int:
    return explain_command(args)


def cmd_score(args: argparse.Namespace) -> int:
    return score_command(args)


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="FILE",
        help="serve this collated file (repeatable): registered for every hook it holds, under "
        "its model's short name, with the model and corpus its metadata names",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--cors-origin", action="append", default=[], help="allow this origin (repeatable)"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="also answer requests whose Host header is this (repeatable; '*' for any); "
        "loopback names and the bound address are always answered",
    )
    parser.add_argument(
        "--expose-paths",
        action="store_true",
        help="show the server's absolute file paths in errors and /datasets",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=ServerSettings.model_fields["max_tokens_per_request"].default,
        help="per live text",
    )
    parser.add_argument(
        "--debugger-model",
        default=ServerSettings.model_fields["debugger_model"].default,
        help="the model TDB's routes at / debug",
    )
    parser.add_argument(
        "--upstream-timeout",
        type=float,
        default=ServerSettings.model_fields["upstream_timeout_s"].default,
        metavar="SECONDS",
        help="answer 504 when a remote source gives no complete answer within this",
    )
    parser.add_argument(
        "--cache-mb",
        type=float,
        default=ServerSettings.model_fields["record_cache_mb"].default,
        metavar="MB",
        help="memory each in-memory cache of answers may take (records, answers' bytes)",
    )
    parser.add_argument(
        "--decoded-cache-mb",
        type=float,
        default=ServerSettings.model_fields["decoded_cache_mb"].default,
        metavar="MB",
        help="memory the decoded row groups of every dataset may take together",
    )
    parser.add_argument(
        "--max-model-gb",
        type=float,
        default=ServerSettings.model_fields["max_model_gb"].default,
        metavar="GB",
        help="run models up to this size (float32 weights) for example values and for "
        "locating the max of examples the file stores no position for; larger ones only for "
        "live requests",
    )


# -- the registry -------------------------------------------------------------------------------


MAX_CELL = 48  # a table that fits a terminal: longer cells are shortened in the middle


def _cell(value: object, wide: bool) -> str:
    text = "" if value is None else str(value)
    if wide or len(text) <= MAX_CELL:
        return text
    half = (MAX_CELL - 1) // 2
    return text[:half] + "…" + text[-half:]


def format_table(rows: list[dict[str, str]], wide: bool = False) -> str:
    """Left-aligned columns under a header, for terminals."""
    if not rows:
        return "(none)"
    rows = [{c: _cell(v, wide) for c, v in r.items()} for r in rows]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r.get(c) or "") for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        lines.append("  ".join((row.get(c) or "").ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


def _print(records: list, args: argparse.Namespace, columns: list[str], extra=None) -> int:
    if args.json:
        dumped = [r.model_dump(mode="json", by_alias=True) for r in records]
        sys.stdout.write(orjson.dumps(dumped, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        dumped = [r.model_dump(mode="json") for r in records]
        rows = [{c: d[c] for c in columns} | (extra(r) if extra else {}) for r, d in zip(
            records, dumped, strict=True)]  # fmt: skip
        print(format_table(rows, getattr(args, "wide", False)))
    return 0


def _state(metadata) -> dict[str, str]:
    """Whether a dataset's file is here: a local one built or not, a remote one."""
    from registry.paths import local_path

    local = local_path(metadata.neuron_dataset_path)
    if local is None:
        return {"state": "remote"}
    return {"state": "built" if Path(local).exists() else "not built"}


def cmd_datasets(args: argparse.Namespace) -> int:
    everything = get_all_neuron_dataset_metadata()
    records = everything
    if args.model:
        records = [r for r in records if args.model in (r.short_name, r.model)]
    if args.dst:
        records = [r for r in records if r.derived_scalar_type.value == args.dst]
    if not records and (args.model or args.dst):
        names = sorted({r.model or r.short_name for r in everything})
        asked = " and ".join(f"{k} {v!r}" for k, v in (("model", args.model), ("type", args.dst))
                             if v)  # fmt: skip
        print(
            f"neurons: no dataset of {asked}; models with datasets: {', '.join(names)}. "
            "Yours are listed once their module is loaded (--register MODULE, or "
            f"${REGISTER_ENV}).",
            file=sys.stderr,
        )
        return 1
    columns = ["short_name", "derived_scalar_type", "model", "corpus"]
    if args.wide or args.json:
        columns.append("neuron_dataset_path")
    _print(records, args, columns, _state)
    if not args.json and any(_state(r)["state"] == "not built" for r in records):
        print(
            "\nnot built: `neurons collate --out PATH` writes a dataset's file; "
            "`neurons run` builds the default one (smollm2-135m) and serves it"
        )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    columns = ["short_name", "hf_path_or_id", "gguf_file", "revision", "user_visible_name"]
    return _print(get_all_models(), args, columns)


# -- collation ----------------------------------------------------------------------------------


def cmd_collate(args: argparse.Namespace) -> int:
    return collate_command(args)


def cmd_merge(args: argparse.Namespace) -> int:
    path = merge_files(args.files, args.out, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


# -- serving ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from activation_server.app import create_app
    from activation_server.settings import LOOPBACK_HOSTS
    from activations.api import register_file

    for path in args.dataset:
        print(f"serving {path} as {register_file(path)!r}")
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        cors_origins=args.cors_origin,
        allowed_hosts=[*LOOPBACK_HOSTS, *args.allowed_host],
        expose_paths=args.expose_paths,
        max_tokens_per_request=args.max_tokens,
        upstream_timeout_s=args.upstream_timeout,
        max_model_gb=args.max_model_gb,
        record_cache_mb=args.cache_mb,
        decoded_cache_mb=args.decoded_cache_mb,
        debugger_model=args.debugger_model,
    )
    print(f"serving on http://{args.host}:{args.port}/  (API docs: /docs; Ctrl-C stops)")
    serve(create_app(settings), settings)
    return 0


def serve(app, settings) -> None:
    import uvicorn

    uvicorn.Server(server_config(app, settings)).run()


def server_config(app, settings):
    """uvicorn with this server's choices: a deadline on request headers (protocol.py), the
    keep-alive time clients' pools are told of, and a shutdown that waits for no hung work."""
    import uvicorn

    from activation_server.protocol import guarded_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        http=guarded_protocol(settings.header_timeout_s),
        timeout_keep_alive=int(settings.keep_alive_s),
        timeout_graceful_shutdown=int(settings.upstream_timeout_s) + 1,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Serve at once; the default dataset, where it is missing, is collated meanwhile by a
    process of its own (its own copy of the model, at a lower priority, so that live requests
    keep the served model to themselves), with its records shown from its first checkpoint on.
    A restart resumes it from its last checkpoint."""
    from registry import get_neuron_dataset_metadata_by_short_name_and_dst
    from registry.builtin import EMBEDDED_MODEL

    dataset = get_neuron_dataset_metadata_by_short_name_and_dst(EMBEDDED_MODEL, "mlp_post_act")
    path = Path(dataset.neuron_dataset_path)
    if path.exists():
        print(f"default dataset: {path}")
        return cmd_serve(args)
    if args.max_docs < 1:
        raise ValueError("--max-docs must be at least 1")
    worker = start_default_collation(path, args.max_docs, args.checkpoint_every)
    print(
        f"collating the default dataset ({args.max_docs} Shakespeare documents) in the "
        f"background (pid {worker.pid}) into {path}; its records appear on the page from its "
        f"first checkpoint ({args.checkpoint_every} documents) on"
    )
    try:
        return cmd_serve(args)
    finally:
        if worker.poll() is None:  # the checkpoint stays: the next run resumes from it
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()


def start_default_collation(path: Path, max_docs: int, every: int) -> subprocess.Popen:
    from registry.builtin import DEFAULT_CORPUS, EMBEDDED_MODEL

    command = [
        sys.executable, "-m", "activations.collate", "--model", EMBEDDED_MODEL, "--corpus",
        DEFAULT_CORPUS, "--out", str(path), "--max-docs", str(max_docs), "--resume",
        "--partial", "--checkpoint-every", str(every),
    ]  # fmt: skip
    # said at once, under this process's pid until the collation writes its own (never after
    # it, so that "starting" cannot overwrite its first word): the page shows it from the start
    ProgressFile(path, EMBEDDED_MODEL, DEFAULT_CORPUS).update("starting")
    return subprocess.Popen(command, preexec_fn=_background_child)


def _background_child() -> None:
    """The collation yields the CPU to the server's live requests, and a terminal's Ctrl-C is
    the server's to handle: it stops the collation itself (SIGTERM, above). Reached by the
    Ctrl-C too, a collation still importing torch printed a KeyboardInterrupt traceback."""
    os.nice(10)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # a redirected log is written as it happens
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
