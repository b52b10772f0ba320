"""`neurons explain` and `neurons score`: explain a dataset's neurons (given layers and
neurons, or a random sample of them) with any registered explainer, resumable (a neuron whose
file is written is done; files are written whole), with a progress bar (explanations per minute,
time left), and a summary of the scores at the end; score one text for one neuron."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

from activations.explanations.errors import BackendError, UnsuitableModelError
from activations.explanations.pipeline import OVERALL
from activations.explanations.service import Explanations
from activations.explanations.store import explanation_path
from activations.models.pool import ModelPool
from activations.pools import Pools
from activations.sources.catalog import RecordSources
from registry import get_neuron_dataset_metadata_by_short_name_and_dst
from registry.paths import local_path


def parse_ranges(text: str) -> list[int]:
    """ "0,3,5-7" as [0, 3, 5, 6, 7]."""
    found: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"{text!r}: give numbers and ranges like 0,3,5-7")
        found += list(range(int(low), int(high or low) + 1))
    return found


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True,
        help="a registered dataset's short name, or a file `neurons collate` wrote",
    )  # fmt: skip
    parser.add_argument("--dst", default="mlp_post_act", help="its derived scalar type")
    parser.add_argument(
        "--explainer", help="a registered explainer (default: the embedded model, in process)"
    )
    parser.add_argument("--device", default="cpu", help="where in-process models run")
    parser.add_argument("--out", help="explanation dataset folder (default: under $NEURONS_HOME)")
    parser.add_argument(
        "--threads", type=int,
        help="torch threads of in-process models (default: one per core); 1 where other work "
        "shares the cores: threads that wait for each other on busy cores are several times "
        "slower than one",
    )  # fmt: skip


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--layers", help="layers, e.g. 0,3,5-7 (default: all)")
    parser.add_argument("--neurons", help="neurons of each layer, e.g. 0-99 (default: all)")
    parser.add_argument("--sample", type=int, help="explain this many neurons drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="of the random sample")
    parser.add_argument("--candidates", type=int, default=3, help="explanations per target")
    parser.add_argument("--again", action="store_true", help="explain neurons already done too")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="score neuron-explainer's top-tokens baseline too (not stored) and summarise it",
    )


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--layer", type=int, required=True)
    parser.add_argument("--neuron", type=int, required=True)
    parser.add_argument("--text", required=True, help="the explanation to score")
    parser.add_argument("--quadrant", help="score it for this GLU quadrant's activations")
    parser.add_argument("--max-sequences", type=int)


def _service(device: str) -> Explanations:
    models = ModelPool(device)
    return Explanations(RecordSources(models, pools=Pools()), models)


async def _neurons(service: Explanations, metadata, args) -> list[tuple[int, int]]:
    shape = await service.sources.get(metadata).shape()
    if shape is None and not (args.layers and args.neurons):
        raise ValueError(
            f"{metadata.short_name}: its shape is not known without reading every file: "
            "give --layers and --neurons"
        )
    layers = parse_ranges(args.layers) if args.layers else shape.layers
    neurons = parse_ranges(args.neurons) if args.neurons else range(shape.neurons_per_layer)
    every = [(layer, neuron) for layer in layers for neuron in neurons]
    if args.sample is not None:
        every = sorted(nested_sample(every, args.sample, args.seed))
    return every


def nested_sample(population: list, k: int, seed: int) -> list:
    """k of the population drawn at random, without replacement, so that a larger k of the
    same seed draws the smaller one's first: a run resumed with a larger --sample adds
    neurons to those done. random.sample does not promise that (on small populations it
    switches method with k); this is its draw for large ones (the same neurons there), kept
    for every size."""
    rng, chosen, seen = random.Random(seed), [], set()
    while len(chosen) < min(k, len(population)):
        index = rng.randrange(len(population))
        if index not in seen:
            seen.add(index)
            chosen.append(population[index])
    return chosen


def _done(service: Explanations, metadata, out, layer: int, neuron: int) -> bool:
    root = service.written(metadata, OVERALL, out).explanation_dataset_path
    path = local_path(explanation_path(root, layer, neuron))
    return path is not None and os.path.exists(path)


def summary(scores: list[float | None]) -> str:
    """The distribution of the best scores: how many, mean, quartiles, a histogram."""
    defined = sorted(s for s in scores if s is not None)
    if not defined:
        return f"{len(scores)} neurons, no defined score"
    q = statistics.quantiles(defined, n=4) if len(defined) > 1 else [defined[0]] * 3
    lines = [
        f"{len(scores)} neurons explained, {len(scores) - len(defined)} with an undefined score; "
        f"best score per neuron: mean {statistics.fmean(defined):.3f}, "
        f"quartiles {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}, max {defined[-1]:.3f}"
    ]
    edges = [-1.0, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0001]
    for low, high in zip(edges, edges[1:], strict=False):
        n = sum(low <= s < high for s in defined)
        lines.append(
            f"  [{low:+.1f}, {min(high, 1):+.1f}) {n:5d} {'#' * round(40 * n / len(defined))}"
        )
    return "\n".join(lines)


async def explain_all(args) -> int:
    from tqdm import tqdm

    service = _service(args.device)
    metadata = get_neuron_dataset_metadata_by_short_name_and_dst(_dataset(args.dataset), args.dst)
    try:
        every = await _neurons(service, metadata, args)
        todo = [n for n in every if args.again or not _done(service, metadata, args.out, *n)]
        print(f"{len(every)} neurons, {len(every) - len(todo)} already explained", flush=True)
        scores, failed, started, baselines, written = [], [], time.monotonic(), [], 0
        bar = tqdm(todo, unit="neuron", file=sys.stderr, dynamic_ncols=True)
        for layer, neuron in bar:
            try:
                explained = await service.explain(
                    metadata, layer, neuron, args.explainer, args.candidates, args.out,
                    args.again, args.baseline,
                )  # fmt: skip
            except UnsuitableModelError:
                raise
            except (ValueError, BackendError) as error:
                failed.append(f"layer {layer} neuron {neuron}: {error}")
                if isinstance(error, BackendError) and not scores:
                    raise  # the backend does not work at all: say so at once
                continue
            top = explained.by_target[0][1][0]
            best = top.get_preferred_score()
            scores.append(best)
            line = f"layer {layer} neuron {neuron}: {best} {top.explanation!r}"
            if explained.baseline is not None:
                baselines.append(explained.baseline.get_preferred_score())
                line += f"; top-tokens baseline {baselines[-1]}"
            bar.write(line)
            written += sum(len(found) for _, found in explained.by_target)
            minutes = max(1e-9, time.monotonic() - started) / 60
            bar.set_postfix_str(f"{written / minutes:.1f} explanations/min (scored)")
        bar.close()
        for line in failed[:20]:
            print(f"skipped: {line}")
        print(summary(scores))
        if baselines:
            print("top-tokens baseline, scored the same way:")
            print(summary(baselines))
        return 0
    finally:
        service.models.stop()
        await service.close()


def set_threads(threads: int | None) -> None:
    """torch's thread count, where given (a positive number)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads {threads}: give a positive number of threads")
    import torch

    torch.set_num_threads(threads)


def explain_command(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    try:
        return asyncio.run(explain_all(args))
    except KeyboardInterrupt:
        print("neurons: interrupted; the next run resumes (neurons done are kept, whole)")
        return 130
    except BackendError as error:
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2


async def _score(args) -> int:
    service = _service(args.device)
    metadata = get_neuron_dataset_metadata_by_short_name_and_dst(_dataset(args.dataset), args.dst)
    try:
        scored = await service.score(
            metadata,
            args.layer,
            args.neuron,
            args.text,
            args.quadrant,
            args.max_sequences,
            args.explainer,
            args.out,
        )
    finally:
        service.models.stop()
        await service.close()
    sim = scored.scored_simulation
    print(f"score {sim.ev_correlation_score}  (correlation of the simulation with the neuron)")
    print(f"rsquared {sim.rsquared_score}")
    print(f"absolute deviation explained {sim.absolute_dev_explained_score}")
    return 0


def score_command(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    try:
        return asyncio.run(_score(args))
    except BackendError as error:
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2


def _dataset(name: str) -> str:
    """A registered short name as it is; a file `neurons collate` wrote, registered by its path."""
    if not Path(name).is_file():
        return name
    from activations.collate.registration import register_file

    return register_file(name)
