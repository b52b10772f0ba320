"""The `neurons` command: every subcommand, with user registrations loaded first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activations import cli as activations_cli
from registry import cli as registry_cli
from registry.plugins import REGISTER_ENV


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"import MODULE first so its registrations count (repeatable; also ${REGISTER_ENV})",
    )
    parser = argparse.ArgumentParser(
        prog="neurons", description="Look inside the MLP neurons of gated language models."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    registry_cli.add_commands(subparsers, common)
    activations_cli.add_commands(subparsers, common)
    serve = subparsers.add_parser(
        "serve", parents=[common], help="serve records and live activations"
    )
    _server_options(serve)
    serve.set_defaults(func=cmd_serve)
    run = subparsers.add_parser(
        "run",
        parents=[common],
        help="build the default dataset (embedded SmolLM2 over Shakespeare) if missing, then serve",
    )
    _server_options(run)
    run.add_argument("--max-docs", type=int, default=DEFAULT_RUN_DOCS)
    run.set_defaults(func=cmd_run)
    return parser


DEFAULT_RUN_DOCS = 192  # about ten minutes on 2 CPU cores


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--cors-origin", action="append", default=[], help="allow this origin (repeatable)"
    )
    parser.add_argument("--max-tokens", type=int, default=1024, help="per live text")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from activation_server.app import create_app
    from activation_server.settings import ServerSettings

    settings = ServerSettings(
        host=args.host,
        port=args.port,
        cors_origins=args.cors_origin,
        max_tokens_per_request=args.max_tokens,
    )
    print(f"serving on http://{args.host}:{args.port}/  (API docs: /docs; Ctrl-C stops)")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from activations.collate import CollateConfig, collate
    from registry import get_neuron_dataset_metadata_by_short_name_and_dst
    from registry.builtin import DEFAULT_CORPUS, EMBEDDED_MODEL

    dataset = get_neuron_dataset_metadata_by_short_name_and_dst(EMBEDDED_MODEL, "mlp_post_act")
    path = Path(dataset.neuron_dataset_path)
    if path.exists():
        print(f"default dataset: {path}")
    else:
        print(f"building the default dataset {path} ({args.max_docs} Shakespeare documents)")
        collate(
            CollateConfig(
                model=EMBEDDED_MODEL,
                corpus=DEFAULT_CORPUS,
                out=str(path),
                max_docs=args.max_docs,
                resume=True,
            )
        )
    return cmd_serve(args)


def main(argv: list[str] | None = None) -> int:
    return registry_cli.execute(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
