"""What a collation is asked to do: one dataclass, whose fields also make the command line.

`neurons collate` and the torchrun entry (`python -m activations.collate`) build their arguments
from the fields below (flag, default, help, choices), so a default is written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from activations.records.schema import DEFAULT_TOP_K

# How collation reduces the activations (engines.py); here, so that the command line knows the
# names without importing torch.
ENGINES: tuple[str, ...] = ("auto", "kernel", "triton", "compiled", "eager")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_TEXT_COLUMN = "text"
MAX_TOP_K = 10_000  # examples per neuron, quadrant and hook; 10^8 asked 8.6 TB of memory
DEFAULT_ROWS_PER_GROUP = 128  # divides 1536 and 11008: a group never spans two layers


def parse_layers(text: str) -> list[int]:
    """'0,3,5-7' → [0, 3, 5, 6, 7]."""
    layers: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                low, high = part.split("-", 1)
                if int(high) < int(low):
                    raise argparse.ArgumentTypeError(
                        f"invalid layers {text!r}: the range {part.strip()} runs backwards; "
                        f"write it low-high ({int(high)}-{int(low)})"
                    )
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


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A field that is also a command-line option (cli: argparse's type or choices)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class CollateConfig:
    """Everything that decides the output; the fields that change results form the fingerprint."""

    model: str = field(
        metadata={
            "help": "a registered short name, a model folder (./mine) or a Hugging Face id "
            "(org/name); the last two are registered on the fly"
        }
    )
    out: str = field(metadata={"help": "output .parquet path"})
    corpus: str = _option(
        "shakespeare",
        "'shakespeare' (embedded), 'hf:<datasets name>', or a .txt/.jsonl/.parquet file",
    )
    max_docs: int | None = _option(None, "first N documents only", type=int)
    max_tokens: int = _option(1024, "tokens per document")
    top_k: int = _option(DEFAULT_TOP_K, "examples kept per quadrant and hook")
    layers: list[int] | None = _option(None, "e.g. 0,3,5-7 (default all)", type=parse_layers)
    batch_size: int = _option(4, "documents per forward pass")
    device: str = _option("cpu", "cpu, cuda (each rank its own GPU), ...")
    dtype: str = _option("float32", "the model's dtype", choices=DTYPES)
    refactor_glu: bool | None = _option(
        None,
        "GLUScope's sign refactoring (default: as the model's registry entry says)",
        flag=True,
    )
    bos_token: str | None = _option(
        None,
        "a token put before every document whose tokenizer begins it with none, as the "
        "published OLMo files did with <|endoftext|> (default: the model's registry entry; "
        "'none': no token)",
    )
    checkpoint_every: int = _option(64, "documents between checkpoints")
    partial: bool = _option(
        False,
        "at every checkpoint, also write the records so far beside the output "
        "(<out>.partial.parquet), which a server shows until the output exists",
    )
    resume: bool = _option(False, "continue from the checkpoint")
    overwrite: bool = _option(False, "replace an existing output")
    engine: str = _option(
        "auto",
        "kernel: CPU with gcc, float32 GLU; compiled: torch.compile; eager: plain torch; "
        "auto: kernel where it fits, else compiled",
        choices=ENGINES,
    )
    text_column: str = _option(
        DEFAULT_TEXT_COLUMN, "the corpus's text column (.jsonl, .parquet, hf:)"
    )
    distributed: bool = _option(
        False, "shard documents over torchrun's ranks (implied when started by torchrun)"
    )
    # not options: set by code (tests, merges, the server's default dataset)
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP
    doc_range: tuple[int, int] | None = None  # [start, stop) of the corpus; default all
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        check_engine(self.engine)  # before the model loads
        for name in ("top_k", "max_tokens", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.top_k > MAX_TOP_K:  # kept per neuron, quadrant and hook, all in memory
            raise ValueError(f"--top-k must be at most {MAX_TOP_K}, not {self.top_k}")
        if self.max_docs is not None and self.max_docs < 1:
            raise ValueError("--max-docs must be at least 1 (leave it out for every document)")

    def bos_rule(self, model_default: str | None) -> str | None:
        """The BOS token of this run: the option's, else the model's registry entry's."""
        if self.bos_token is None:
            return model_default
        return None if self.bos_token.lower() == "none" else self.bos_token

    def fingerprint(self) -> str:
        keys = ("model", "corpus", "max_docs", "max_tokens", "top_k", "layers", "batch_size")
        keys += ("dtype", "refactor_glu", "bos_token", "text_column", "doc_range")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cli_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(CollateConfig) if "help" in f.metadata]


def add_collate_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per CollateConfig field that has help; defaults are the fields' own."""
    for f in _cli_fields():
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if f.default is dataclasses.MISSING:
            parser.add_argument(flag, required=True, help=meta["help"])
        elif isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=meta["help"])
        elif meta.get("flag"):  # on, off, or (None) left to a default decided later
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=meta["help"]
            )
        else:
            kind = meta.get("type") or (type(f.default) if f.default is not None else str)
            parser.add_argument(
                flag, type=kind, default=f.default, choices=meta.get("choices"), help=meta["help"]
            )


def config_from_args(args: argparse.Namespace, **overrides: Any) -> CollateConfig:
    values = {f.name: getattr(args, f.name) for f in _cli_fields()}
    return CollateConfig(**(values | overrides))
