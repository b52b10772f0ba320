"""The `neurons` command: every subcommand, with user registrations loaded first."""

from __future__ import annotations

import argparse
import sys

from activations import cli as activations_cli
from registry import cli as registry_cli
from registry.plugins import REGISTER_ENV, PluginError, load_register_modules


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        load_register_modules(args.register)
    except PluginError as error:
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (LookupError, ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
