"""The score distribution of random neurons of a collated dataset, each explained and scored by
an explainer (the embedded SmolLM2-135M-Instruct by default), beside neuron-explainer's "top
tokens" baseline explanation scored the same way (same simulator, same valid records).

Each neuron's positive activations are explained (neuron-explainer explains a neuron's
positive activations; `neurons explain` adds one explanation per GLU quadrant, not counted
here): 5 train records shown, the candidates scored on the valid records (5 top, 5 random),
the best one kept. One JSON line per neuron is appended to --out as it is done, so a stopped
run goes on from where it was; the summary (n, mean, median, quantiles of both kinds) is
printed and written beside it (--out with .summary.json).

    .venv/bin/python -m bench.explain_distribution --dataset smol.parquet --sample 200 \\
        --out explain_distribution.jsonl --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path


def describe(values: list[float | None]) -> dict:
    """n, mean, median, quantiles (10/25/75/90 %), min, max, share above 0 of the defined ones."""
    defined = sorted(v for v in values if v is not None)
    found: dict = {"n": len(values), "undefined": len(values) - len(defined)}
    if len(defined) < 2:
        return {**found, "values": defined}
    deciles = statistics.quantiles(defined, n=10, method="inclusive")
    quartiles = statistics.quantiles(defined, n=4, method="inclusive")
    return {
        **found,
        "mean": statistics.fmean(defined),
        "median": statistics.median(defined),
        "p10": deciles[0],
        "p25": quartiles[0],
        "p75": quartiles[2],
        "p90": deciles[-1],
        "min": defined[0],
        "max": defined[-1],
        "above_0": sum(v > 0 for v in defined) / len(defined),
    }


def summarise(lines: list[dict]) -> dict:
    explained = [line for line in lines if "score" in line]
    pairs = [
        (line["score"], line["baseline_score"])
        for line in explained
        if line["score"] is not None and line["baseline_score"] is not None
    ]
    return {
        "neurons": len(lines),
        "never_active": len(lines) - len(explained),
        "explanation": describe([line["score"] for line in explained]),
        "top_tokens_baseline": describe([line["baseline_score"] for line in explained]),
        "explanation_beats_baseline": (
            sum(a > b for a, b in pairs) / len(pairs) if pairs else None
        ),
        "mean_difference": statistics.fmean(a - b for a, b in pairs) if pairs else None,
        "seconds_per_neuron": statistics.fmean(line["seconds"] for line in explained)
        if explained
        else None,
    }


def _lines_done(out: Path) -> list[dict]:
    """The lines of a run before (none without its file). Each line is written whole, with its
    newline; a last line without one was cut by a stop as it was written: it is dropped from
    the file, so that the run goes on after the last whole line."""
    if not out.exists():
        return []
    text = out.read_bytes()
    whole = text[: text.rfind(b"\n") + 1]
    if len(whole) < len(text):
        with out.open("r+b") as file:
            file.truncate(len(whole))
    return [json.loads(line) for line in whole.splitlines() if line]


async def run(args: argparse.Namespace) -> dict:
    from activations.explanations.command import _dataset, _neurons, _service
    from activations.explanations.pipeline import explain, score, top_tokens_explanation
    from activations.explanations.service import EXAMPLES_PER_SPLIT
    from registry import get_neuron_dataset_metadata_by_short_name_and_dst

    out = Path(args.out)
    lines = _lines_done(out)
    done = {(line["layer"], line["neuron"]) for line in lines}
    service = _service(args.device)
    metadata = get_neuron_dataset_metadata_by_short_name_and_dst(_dataset(args.dataset), args.dst)
    try:
        every = await _neurons(service, metadata, args)
        random.Random(args.seed).shuffle(every)  # a run stopped early: still a random sample
        backend = service.backend(args.explainer)
        for layer, neuron in every:
            if (layer, neuron) in done:
                continue
            began = time.perf_counter()
            overall = (await service.targets(metadata, layer, neuron))[0]
            line: dict = {"layer": layer, "neuron": neuron}
            if overall.top and overall.max_activation > 0:
                what = f"layer {layer} neuron {neuron}"
                found = await explain(
                    backend, overall, what, args.candidates, per_split=EXAMPLES_PER_SPLIT
                )
                text = top_tokens_explanation(overall)
                base = await score(backend, overall, text, per_split=EXAMPLES_PER_SPLIT)
                line |= {
                    "explanation": found[0].explanation,
                    "score": found[0].get_preferred_score(),
                    "baseline": text,
                    "baseline_score": base.get_preferred_score(),
                    "seconds": time.perf_counter() - began,
                }
            lines.append(line)
            with out.open("a") as sink:
                sink.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
    finally:
        service.models.stop()
        await service.close()
    summary = summarise(lines)
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_distribution")
    parser.add_argument("--dataset", required=True, help="a short name or a collated file")
    parser.add_argument("--dst", default="mlp_post_act")
    parser.add_argument("--sample", type=int, default=200, help="neurons drawn at random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", help="layers to draw from (default: all)")
    parser.add_argument("--neurons", help="neurons to draw from (default: all)")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--explainer", help="a registered explainer (default: embedded)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (1 on shared cores)")
    parser.add_argument("--out", default="explain_distribution.jsonl")
    args = parser.parse_args()
    from activations.explanations.command import set_threads

    set_threads(args.threads)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
