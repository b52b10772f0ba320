"""`python -m activations.collate ...`: the entry torchrun starts on every rank (and the same
options as `neurons collate`)."""

from __future__ import annotations

import argparse
import sys

from activations.commands import run_command


def main(argv: list[str] | None = None) -> int:
    from activations.collate.config import add_collate_arguments

    parser = argparse.ArgumentParser(prog="python -m activations.collate")
    parser.add_argument("--register", action="append", default=[], metavar="MODULE")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    add_collate_arguments(parser)
    parser.set_defaults(func=collate_command)
    return run_command(parser.parse_args(argv))


def collate_command(args: argparse.Namespace) -> int:
    from activations.collate.config import config_from_args
    from activations.collate.distributed import launched_by_torchrun
    from activations.collate.run import collate

    config = config_from_args(args, distributed=args.distributed or launched_by_torchrun())
    path = collate(config)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
