"""collate(): run a model over a corpus and write one quadrant record per MLP neuron.

Streaming and bounded: a batch of documents goes through the model once, each layer's neurons are
reduced inside the forward pass (hooks), and only O(k·neurons) totals stay in memory. Checkpoints
at batch boundaries make `--resume` give the same file as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from tqdm.auto import tqdm

from activations.collate.collator import Collator
from activations.collate.config import CollateConfig
from activations.collate.distributed import (
    RankInfo,
    combine,
    finish,
    init_distributed,
    rank_device,
    shard,
)
from activations.collate.heap import retained_heap
from activations.collate.output import check_output
from activations.collate.preflight import preflight
from activations.collate.progress import ProgressFile, partial_path
from activations.collate.writer import accumulators_to_table, write_table_atomically
from activations.corpus import Corpus, load_corpus
from activations.models.availability import load_tokenizer
from activations.models.loading import load_model
from activations.models.tokens import Tokens
from activations.records.schema import METADATA_KEY, SCHEMA_VERSION

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def package_version() -> str:
    try:
        return version("glu-neurons")
    except PackageNotFoundError:
        return "unknown"


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
    rank = init_distributed(config.device) if config.distributed else None
    out = Path(config.out)
    check_output(out, config.overwrite, inputs=[config.corpus])
    main = rank is None or rank.is_main
    progress = ProgressFile(out, config.model, config.corpus) if main else None
    try:
        written = _collate(config, rank, out, progress, on_batch)
    except BaseException as error:
        if progress is not None:
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            progress.update("failed" if isinstance(error, Exception) else "stopped", why=reason)
        raise
    if progress is not None:
        partial_path(out).unlink(missing_ok=True)
        progress.finish()
    return written


def _collate(config, rank, out: Path, progress: ProgressFile | None, on_batch) -> Path:
    device = rank_device(config.device, rank) if rank else config.device
    _tell(progress, "checking the model and corpus")
    model_metadata = preflight(config)  # everything that needs no weights, checked first
    corpus = load_corpus(
        config.corpus, load_tokenizer(model_metadata), config.max_tokens, config.text_column
    )
    _tell(progress, "loading the model")
    started = time.perf_counter()
    model, tokenizer = load_model(model_metadata, device, DTYPES[config.dtype])
    load_seconds = time.perf_counter() - started
    start, stop = config.doc_range or (0, None)
    if config.max_docs is not None:
        stop = start + config.max_docs if stop is None else min(stop, start + config.max_docs)
    stop = len(corpus) if stop is None else corpus.clamp(stop)  # a lazy corpus splits no more
    if stop <= start:
        raise ValueError(f"no documents to collate: corpus {corpus.name} has {len(corpus)}")
    first, last = shard(start, stop, config.batch_size, rank) if rank else (start, stop)

    collator = Collator(
        model,
        top_k=config.top_k,
        layers=config.layers,
        refactor_glu=(
            model_metadata.refactor_glu if config.refactor_glu is None else config.refactor_glu
        ),
        engine=config.engine,
        expected_tokens=_expected_tokens(corpus, first, last, config.max_tokens),
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

    def records(upto: int) -> pa.Table:
        """The file's table over documents [start, upto) (all ranks' where distributed)."""
        n_tokens, n_documents = collator.n_tokens, collator.n_documents
        if rank:
            n_tokens, n_documents = combine(collator.accumulators, [n_tokens, n_documents])
        metadata = _file_metadata(config, model_metadata, corpus, collator, start, upto, model)
        metadata.update(
            n_tokens=n_tokens,
            n_documents=n_documents,
            load_seconds=round(load_seconds, 3),
            world_size=rank.world_size if rank else 1,
        )
        if upto < stop:
            metadata["partial"] = {"documents_done": upto - start, "documents_total": stop - start}
        return accumulators_to_table(collator.accumulators, n_tokens, metadata)

    def write_partial(upto: int) -> None:  # records so far, for a server that waits on them
        if config.partial and rank is None:
            table = records(upto)
            write_table_atomically(table, partial_path(out), config.rows_per_group, True)

    show = config.progress and (rank is None or rank.is_main)
    tokens = Tokens(tokenizer, config.bos_rule(model_metadata.bos_token))
    run = _Run(collator, tokens, corpus, config, ckpt, fingerprint, show, progress, write_partial)
    with retained_heap():
        run_docs = run.documents(first, next_doc, last, on_batch)
    table = records(stop)
    if rank is None or rank.is_main:
        _tell(progress, "writing the file")
        metadata = json.loads(table.schema.metadata[METADATA_KEY])
        metadata["documents_this_run"] = run_docs
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})
        write_table_atomically(table, out, config.rows_per_group, config.overwrite)
        _tell(progress, "indexing the examples by token")
        _write_token_index(out, corpus, tokens, config.max_tokens)
    if rank:
        finish()  # every rank waits for the file before dropping its checkpoint
    ckpt.unlink(missing_ok=True)
    return out


def _expected_tokens(corpus: Corpus, first: int, last: int, max_tokens: int) -> int | None:
    """An upper bound of the job's tokens (a document has no more tokens than characters), for
    `--engine auto` to weigh a compilation against; None (large) past a few thousand docs."""
    if last - first > 4096:
        return None
    return sum(min(len(corpus.documents[i]), max_tokens) for i in range(first, last))


def _write_token_index(out: Path, corpus: Corpus, tokens: Tokens, max_tokens: int) -> None:
    """The examples' token index beside the records (activations.search.token_index), so that
    token search answers from the start; a folder it cannot be written to leaves it to the
    first search."""
    from activations.search.token_index import build_token_index, write_token_index

    def document_ids(indices: list[int]) -> dict[int, list[int] | str]:
        return {i: tokens.encode(corpus.documents[i], max_tokens) for i in indices}

    write_token_index(build_token_index([str(out)], document_ids), str(out))


def _tell(progress: ProgressFile | None, state: str) -> None:
    if progress is not None:
        progress.update(state)


@dataclass
class _Run:
    collator: Collator
    tokens: Tokens
    corpus: Corpus
    config: CollateConfig
    ckpt: Path
    fingerprint: str
    progress: bool
    tracker: ProgressFile | None = None
    write_partial: Callable[[int], None] | None = None

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
        if self.tracker is not None:
            self.tracker.fields["resumed_at"] = next_doc - first
        for batch_start in range(next_doc, last, config.batch_size):
            batch_stop = min(batch_start + config.batch_size, last)
            input_ids, mask = self.tokens.batch(
                list(self.corpus.documents[batch_start:batch_stop]), config.max_tokens
            )
            collator.add_batch(
                input_ids.to(device), mask.to(device), torch.arange(batch_start, batch_stop)
            )
            tokens += int(mask.sum())
            bar.update(batch_stop - batch_start)
            elapsed = time.perf_counter() - began
            bar.set_postfix(tok_per_s=f"{tokens / elapsed:.0f}")
            if self.tracker is not None:
                self.tracker.batch(batch_stop - first, last - first, tokens, elapsed)
            if batch_stop - last_saved >= config.checkpoint_every and batch_stop < last:
                self.save(batch_stop)
                if self.write_partial is not None:
                    self.write_partial(batch_stop)
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


def completeness(layers: list[int], n_model_layers: int) -> dict[str, Any]:
    """Whether the file holds every layer of the model: readers of the published dataset find
    a row at layer·neurons + neuron, which holds only in a file of all layers."""
    complete = list(layers) == list(range(n_model_layers))
    note = (
        None
        if complete
        else (
            f"layers {layers[0]}-{layers[-1]} of {n_model_layers} only: rows are not at "
            "layer * n_neurons + neuron; merge it with the other layers (neurons merge)"
        )
    )
    return {"model_layers": n_model_layers, "all_layers": complete, "layers_note": note}


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
        "corpus_sha256": {f"{start}-{stop}": corpus.fingerprint(start, stop)},
        "documents": [start, stop],
        "n_documents": collator.n_documents,
        "n_tokens": collator.n_tokens,
        "top_k": collator.top_k,
        "max_tokens": config.max_tokens,
        "layers": collator.layers,
        **completeness(collator.layers, collator.n_model_layers),
        "n_neurons": collator.sites[0].n_neurons,
        "layout": "glu" if collator.sites[0].is_glu else "plain",
        "refactor_glu": collator.refactor_glu,
        "bos_token": config.bos_rule(model_metadata.bos_token),
        "dtype": config.dtype,
        "batch_size": config.batch_size,
    }
