"""Collation: run a model over a corpus and reduce every MLP neuron to one quadrant record.

Streaming and bounded: a batch of documents goes through the model once, each layer's neurons are
reduced inside the forward pass (hooks), and only O(k·neurons) totals stay in memory. Checkpoints
at batch boundaries make `--resume` give the same file as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from activations import glu_kernel
from activations.corpus import Corpus, load_corpus
from activations.derived_scalars import HOOK_POST, HOOK_PRE_LINEAR, SWISH
from activations.distributed import RankInfo, combine, finish, init_distributed, rank_device, shard
from activations.engines import check_engine
from activations.heap import retained_heap
from activations.mlp_hooks import MlpCapture, MlpSite, find_mlp_sites, layout_of
from activations.model_loading import load_model
from activations.records_io import (
    DEFAULT_ROWS_PER_GROUP,
    accumulators_to_table,
    write_table_atomically,
)
from activations.reduction import BatchStats, LayerAccumulator, batch_stats, glu_values
from activations.schema import DEFAULT_TOP_K, GLU_LAYOUT, SCHEMA_VERSION, RecordLayout

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def package_version() -> str:
    try:
        return version("glu-neurons")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class CollateConfig:
    """Everything that decides the output; the fields that change results form the fingerprint."""

    model: str
    out: str
    corpus: str = "shakespeare"
    max_docs: int | None = None
    max_tokens: int = 1024
    top_k: int = DEFAULT_TOP_K
    layers: list[int] | None = None
    batch_size: int = 4
    device: str = "cpu"
    dtype: str = "float32"
    refactor_glu: bool = False
    checkpoint_every: int = 64
    resume: bool = False
    overwrite: bool = False
    engine: str = "auto"
    text_column: str = "text"
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP
    doc_range: tuple[int, int] | None = None  # [start, stop) of the corpus; default all
    progress: bool = True
    distributed: bool = False  # under torchrun: shard documents over the ranks

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        check_engine(self.engine)  # before the model loads
        for name in ("top_k", "max_tokens", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_docs is not None and self.max_docs < 0:
            raise ValueError("--max-docs must not be negative")

    def fingerprint(self) -> str:
        keys = ("model", "corpus", "max_docs", "max_tokens", "top_k", "layers", "batch_size")
        keys += ("dtype", "refactor_glu", "text_column", "doc_range")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def glu_refactor_signs(site: MlpSite) -> torch.Tensor:
    """-1 for neurons whose gate and in weight vectors point apart (GLUScope's refactoring):
    flipping the sign of in, and of the neuron's output weights, leaves the model's function
    unchanged and puts the neuron's typical activations in the gate+_in+ quadrant."""
    dot = (site.gate.weight.float() * site.up.weight.float()).sum(dim=1)
    return torch.where(dot < 0, -1.0, 1.0)


def choose_engine(requested: str, layout: RecordLayout, model: torch.nn.Module) -> str:
    """The engine that runs `requested` here; an explicit "kernel" that cannot run is an error."""
    check_engine(requested)
    weight = next(model.parameters())
    kernel_fits = layout == GLU_LAYOUT and weight.device.type == "cpu"
    kernel_fits = kernel_fits and weight.dtype == torch.float32 and glu_kernel.available()
    if requested == "auto":
        return "kernel" if kernel_fits else "compiled"
    if requested == "kernel" and not kernel_fits:
        raise ValueError(
            "the kernel engine needs a GLU model in float32 on a CPU with AVX-512 and gcc; "
            "use --engine compiled or eager"
        )
    return requested


def make_stats_fn(layout: RecordLayout, act: Callable, compile: bool) -> Callable:
    """The per-layer reduction, fused by torch.compile when asked (one kernel instead of ~60
    separate masked passes over [B, T, N])."""

    def stats(gate, up, post, valid, sign):
        if gate is not None:
            if sign is not None:
                up, post = up * sign, post * sign
            values = glu_values(gate, up, post, act)
        else:
            values = {HOOK_POST: post.float()}
        s = batch_stats(layout, values, valid)
        return s.counts, s.sums, s.values, s.positions, s.present

    if compile:
        return torch.compile(stats, dynamic=True)
    return stats


def captured_glu_values(tensors: dict[str, torch.Tensor | None], act: Callable) -> dict:
    """The four GLU hooks of one layer, as the model computed them where the capture saw its
    activation (else act(gate) again)."""
    gate, swish = tensors["gate"], tensors["act"]
    if swish is not None and swish.shape != gate.shape:
        swish = None
    return glu_values(gate, tensors["up"], tensors[HOOK_POST], act, swish)


@dataclass
class Collator:
    """Running totals for the chosen layers of one model; feed it tokenized batches."""

    model: torch.nn.Module
    top_k: int = DEFAULT_TOP_K
    layers: list[int] | None = None
    refactor_glu: bool = False
    engine: str = "auto"  # one of ENGINES; after __post_init__, the one that runs
    sites: list[MlpSite] = field(init=False)
    layout: RecordLayout = field(init=False)
    accumulators: dict[int, LayerAccumulator] = field(init=False)
    n_tokens: int = 0
    n_documents: int = 0

    def __post_init__(self) -> None:
        all_sites = find_mlp_sites(self.model)
        valid_layers = range(len(all_sites))
        chosen = sorted(set(self.layers)) if self.layers is not None else list(valid_layers)
        bad = [layer for layer in chosen if layer not in valid_layers]
        if bad or not chosen:
            raise ValueError(
                f"layers {bad or chosen} are not in the model; "
                f"valid layers are 0-{len(all_sites) - 1}"
            )
        self.layers = chosen
        self.sites = [all_sites[layer] for layer in chosen]
        self.layout = layout_of(all_sites)
        if self.refactor_glu and not self.sites[0].is_glu:
            raise ValueError("--refactor-glu needs a GLU model (gate_proj/up_proj/down_proj)")
        device = next(self.model.parameters()).device
        self.accumulators = {
            s.layer: LayerAccumulator(self.layout, s.n_neurons, self.top_k, device)
            for s in self.sites
        }
        self._signs = {
            s.layer: glu_refactor_signs(s).to(device) if self.refactor_glu else None
            for s in self.sites
        }
        self.engine = choose_engine(self.engine, self.layout, self.model)
        self._post_is_product: dict[int, bool] = {}
        compile = self.engine == "compiled"
        self._stats = make_stats_fn(self.layout, self.sites[0].act, compile)

    def add_batch(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, doc_indices: torch.Tensor
    ) -> None:
        """One forward pass over a right-padded batch; padding never counts."""
        self.n_documents += len(doc_indices)
        if input_ids.shape[1] == 0:
            return
        valid = attention_mask.bool().unsqueeze(-1)
        on_device = doc_indices.to(input_ids.device)
        valid_bytes = attention_mask.to(torch.uint8)  # the kernel's form, made once per batch

        def on_layer(layer: int, tensors: dict[str, torch.Tensor | None]) -> None:
            if self.engine == "kernel":
                values = captured_glu_values(tensors, self.sites[0].act)
                if layer not in self._post_is_product:  # as in every GLU we know; checked once
                    product = values[SWISH] * values[HOOK_PRE_LINEAR]
                    self._post_is_product[layer] = torch.equal(values[HOOK_POST], product)
                if self._post_is_product[layer]:
                    del values[HOOK_POST]  # the kernel multiplies: a quarter less to read
                sign = self._signs[layer]
                self.accumulators[layer].fold(values, valid_bytes, doc_indices, sign)
                return
            counts, sums, values, positions, present = self._stats(
                tensors["gate"], tensors["up"], tensors[HOOK_POST], valid, self._signs[layer]
            )
            self.accumulators[layer].add(
                BatchStats(counts, sums, values, positions, present), doc_indices, on_device
            )

        base = getattr(self.model, "base_model", self.model)
        with torch.inference_mode(), MlpCapture(self.sites, on_layer):
            base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        self.n_tokens += int(attention_mask.sum())

    def state_dict(self) -> dict[str, Any]:
        return {
            "n_tokens": self.n_tokens,
            "n_documents": self.n_documents,
            "layers": {layer: acc.state_dict() for layer, acc in self.accumulators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_tokens = state["n_tokens"]
        self.n_documents = state["n_documents"]
        for layer, acc_state in state["layers"].items():
            self.accumulators[layer].load_state_dict(acc_state)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # the output's folder may not exist yet
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def checkpoint_path(out: str | os.PathLike, rank: RankInfo | None = None) -> Path:
    out = Path(out)
    suffix = f".rank{rank.rank}-of-{rank.world_size}.ckpt" if rank else ".ckpt"
    return out.with_name(out.name + suffix)


def collate(config: CollateConfig, on_batch: Callable[[int], None] | None = None) -> Path:
    """Run the whole collation and write the Parquet file; returns its path.

    With `config.distributed` (under torchrun) every rank collates its share of the documents
    and rank 0 writes the combined file. on_batch(next_document) is called after every batch
    (tests use it to interrupt a run).
    """
    from registry import get_model

    rank = init_distributed(config.device) if config.distributed else None
    device = rank_device(config.device, rank) if rank else config.device
    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    model_metadata = get_model(config.model)
    started = time.perf_counter()
    model, tokenizer = load_model(model_metadata, device, DTYPES[config.dtype])
    load_seconds = time.perf_counter() - started
    corpus = load_corpus(config.corpus, tokenizer, config.max_tokens, config.text_column)
    start, stop = config.doc_range or (0, len(corpus))
    stop = min(stop, len(corpus))
    if config.max_docs is not None:
        stop = min(stop, start + config.max_docs)
    if stop <= start:
        raise ValueError(f"no documents to collate: corpus {corpus.name} has {len(corpus)}")
    first, last = shard(start, stop, config.batch_size, rank) if rank else (start, stop)

    collator = Collator(
        model,
        top_k=config.top_k,
        layers=config.layers,
        refactor_glu=config.refactor_glu,
        engine=config.engine,
    )
    ckpt = checkpoint_path(out, rank)
    fingerprint = f"{config.fingerprint()}/{first}-{last}"
    next_doc = first
    if config.resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        if saved["fingerprint"] != fingerprint:
            raise ValueError(
                f"checkpoint {ckpt} was made with other settings ({saved['config']}); "
                "rerun with the same settings, or without --resume to start over"
            )
        collator.load_state_dict(saved["state"])
        next_doc = saved["next_doc"]

    progress = config.progress and (rank is None or rank.is_main)
    run = _Run(collator, tokenizer, corpus, config, ckpt, fingerprint, progress)
    with retained_heap():
        run_docs = run.documents(first, next_doc, last, on_batch)
    n_tokens, n_documents = collator.n_tokens, collator.n_documents
    if rank:
        n_tokens, n_documents = combine(collator.accumulators, [n_tokens, n_documents])
    if rank is None or rank.is_main:
        metadata = _file_metadata(config, model_metadata, corpus, collator, start, stop, model)
        metadata.update(
            n_tokens=n_tokens,
            n_documents=n_documents,
            load_seconds=round(load_seconds, 3),
            documents_this_run=run_docs,
            world_size=rank.world_size if rank else 1,
        )
        table = accumulators_to_table(collator.accumulators, n_tokens, metadata)
        write_table_atomically(table, out, config.rows_per_group)
    if rank:
        finish()  # every rank waits for the file before dropping its checkpoint
    ckpt.unlink(missing_ok=True)
    return out


@dataclass
class _Run:
    collator: Collator
    tokenizer: Any
    corpus: Corpus
    config: CollateConfig
    ckpt: Path
    fingerprint: str
    progress: bool

    def documents(
        self, first: int, next_doc: int, last: int, on_batch: Callable[[int], None] | None
    ) -> int:
        """Batches of [first, last) from `next_doc` on; returns how many documents ran."""
        config, collator = self.config, self.collator
        bar = tqdm(
            total=last - first,
            initial=next_doc - first,
            unit="doc",
            desc=f"collate {config.model}",
            disable=not self.progress,
        )
        device = collator.accumulators[collator.layers[0]].device
        began, tokens, last_saved = time.perf_counter(), 0, next_doc
        for batch_start in range(next_doc, last, config.batch_size):
            batch_stop = min(batch_start + config.batch_size, last)
            encoded = self.tokenizer(
                list(self.corpus.documents[batch_start:batch_stop]),
                padding=True,
                truncation=True,
                max_length=config.max_tokens,
                return_tensors="pt",
            )
            collator.add_batch(
                encoded["input_ids"].to(device),
                encoded["attention_mask"].to(device),
                torch.arange(batch_start, batch_stop),
            )
            tokens += int(encoded["attention_mask"].sum())
            bar.update(batch_stop - batch_start)
            bar.set_postfix(tok_per_s=f"{tokens / (time.perf_counter() - began):.0f}")
            if batch_stop - last_saved >= config.checkpoint_every and batch_stop < last:
                self.save(batch_stop)
                last_saved = batch_stop
            if on_batch is not None:
                on_batch(batch_stop)
        bar.close()
        return last - next_doc

    def save(self, next_doc: int) -> None:
        _save_checkpoint(
            self.ckpt,
            {
                "fingerprint": self.fingerprint,
                "config": asdict(self.config),
                "next_doc": next_doc,
                "state": self.collator.state_dict(),
            },
        )


def _file_metadata(config, model_metadata, corpus, collator, start, stop, model) -> dict[str, Any]:
    return {
        "version": package_version(),
        "schema_version": SCHEMA_VERSION,
        "model": model_metadata.short_name,
        "model_path": model_metadata.hf_path_or_id,
        "gguf_file": model_metadata.gguf_file,
        "revision": model_metadata.revision,
        "architecture": type(model).__name__,
        "hidden_act": getattr(model.config, "hidden_act", None)
        or getattr(model.config, "activation_function", None),
        "corpus": corpus.name,
        "documents": [start, stop],
        "n_documents": collator.n_documents,
        "n_tokens": collator.n_tokens,
        "top_k": collator.top_k,
        "max_tokens": config.max_tokens,
        "layers": collator.layers,
        "n_neurons": collator.sites[0].n_neurons,
        "layout": "glu" if collator.sites[0].is_glu else "plain",
        "refactor_glu": collator.refactor_glu,
        "dtype": config.dtype,
        "batch_size": config.batch_size,
    }


if __name__ == "__main__":  # torchrun --nproc-per-node N -m activations.collate ...
    import sys

    from activations.cli import collate_main

    sys.exit(collate_main(sys.argv[1:]))
