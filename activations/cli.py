"""`neurons collate` and `neurons merge`."""

from __future__ import annotations

import argparse

from activations.engines import ENGINES
from activations.schema import DEFAULT_TOP_K


def parse_layers(text: str) -> list[int]:
    """'0,3,5-7' → [0, 3, 5, 6, 7]."""
    layers: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                low, high = part.split("-", 1)
                layers.extend(range(int(low), int(high) + 1))
            elif part.strip():
                layers.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid layers {text!r}: use numbers and ranges like 0,3,5-7"
        ) from None
    if not layers or min(layers) < 0:
        raise argparse.ArgumentTypeError(f"invalid layers {text!r}: use non-negative numbers")
    return layers


def cmd_collate(args: argparse.Namespace) -> int:
    from activations.collate import CollateConfig, collate
    from activations.distributed import launched_by_torchrun

    config = CollateConfig(
        model=args.model,
        out=args.out,
        corpus=args.corpus,
        max_docs=args.max_docs,
        max_tokens=args.max_tokens,
        top_k=args.top_k,
        layers=args.layers,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        refactor_glu=args.refactor_glu,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        overwrite=args.overwrite,
        engine=args.engine,
        text_column=args.text_column,
        distributed=args.distributed or launched_by_torchrun(),
    )
    path = collate(config)
    print(f"wrote {path}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from activations.merge import merge_files

    path = merge_files(args.files, args.out, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def collate_main(argv: list[str]) -> int:
    """`python -m activations.collate ...`, the entry torchrun starts on every rank."""
    from registry.cli import execute

    parser = argparse.ArgumentParser(prog="python -m activations.collate")
    parser.add_argument("--register", action="append", default=[], metavar="MODULE")
    add_collate_arguments(parser)
    return execute(parser.parse_args(argv))


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    collate = subparsers.add_parser(
        "collate",
        parents=[common],
        help="run a model over a corpus and write one GLU quadrant record per neuron (Parquet)",
    )
    add_collate_arguments(collate)

    merge = subparsers.add_parser(
        "merge", parents=[common], help="merge collated files over disjoint documents exactly"
    )
    merge.add_argument("files", nargs="+")
    merge.add_argument("--out", required=True)
    merge.add_argument("--overwrite", action="store_true")
    merge.set_defaults(func=cmd_merge)


def add_collate_arguments(collate: argparse.ArgumentParser) -> None:
    collate.add_argument("--model", required=True, help="registered model short name")
    collate.add_argument(
        "--corpus",
        default="shakespeare",
        help="'shakespeare' (embedded), 'hf:<datasets name>', or a .txt/.jsonl/.parquet file",
    )
    collate.add_argument("--out", required=True, help="output .parquet path")
    collate.add_argument("--max-docs", type=int, default=None, help="first N documents only")
    collate.add_argument("--max-tokens", type=int, default=1024, help="tokens per document")
    collate.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    collate.add_argument("--layers", type=parse_layers, default=None, help="e.g. 0,3,5-7")
    collate.add_argument("--batch-size", type=int, default=4)
    collate.add_argument("--device", default="cpu", help="cpu, cuda (each rank its own GPU), ...")
    collate.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    collate.add_argument("--refactor-glu", action="store_true", help="GLUScope's sign refactoring")
    collate.add_argument("--checkpoint-every", type=int, default=64, help="documents")
    collate.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    collate.add_argument("--overwrite", action="store_true", help="replace an existing output")
    collate.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="kernel: AVX-512 CPU, float32 GLU; compiled: torch.compile; eager: plain torch; "
        "auto: kernel where it fits, else compiled",
    )
    collate.add_argument("--text-column", default="text")
    collate.add_argument(
        "--distributed",
        action="store_true",
        help="shard documents over torchrun's ranks (implied when started by torchrun)",
    )
    collate.set_defaults(func=cmd_collate)
