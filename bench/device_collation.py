"""Collation against the bare forward pass on a CUDA device, for full-size GLU architectures.

Not part of `make bench` (it needs a GPU): `python -m bench.device_collation --arch olmo-7b`.
Weights are random (the architecture, not the checkpoint, decides the cost), documents are random
token ids of full length, so no download is needed. Each timed pass is synchronised; the collator
is warmed with more documents than its top-k first, so the figures are its steady state, and the
first passes (lists still filling) are reported beside them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from activations.collate import Collator


def _olmo_7b():
    from transformers import OlmoConfig

    return OlmoConfig(
        vocab_size=50304,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        max_position_embeddings=4096,
    )


def _smollm2_135m():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    )


ARCHITECTURES: dict[str, Callable[[], object]] = {
    "olmo-7b": _olmo_7b,
    "smollm2-135m": _smollm2_135m,
}


def timed(fn: Callable[[], None]) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="olmo-7b")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="print where collation's time goes")
    parser.add_argument("--engine", choices=["compiled", "triton", "eager"], default="compiled")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, args.dtype)
    config = ARCHITECTURES[args.arch]()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    vocab = config.vocab_size
    next_doc = 0

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nonlocal next_doc
        ids = torch.randint(0, vocab, (args.batch_size, args.tokens), device="cuda")
        mask = torch.ones_like(ids)
        mask[-1, args.tokens // 2 :] = 0  # one padded document, as real batches have
        docs = torch.arange(next_doc, next_doc + args.batch_size)
        next_doc += args.batch_size
        return ids, mask, docs

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> None:
        with torch.inference_mode():
            model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)

    collator = Collator(model, top_k=args.top_k, engine=args.engine)
    ids, mask, docs = batch()
    first_call = timed(lambda: collator.add_batch(ids, mask, docs))
    fill = []
    while next_doc <= 2 * args.top_k:  # the lists fill: every column changes
        ids, mask, docs = batch()
        fill.append(timed(lambda: collator.add_batch(ids, mask, docs)))  # noqa: B023
    forward(ids, mask)
    torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {"forward": [], "collator": []}
    peaks: dict[str, int] = {"forward": 0, "collator": 0}
    tokens = 0
    for repeat in range(args.repeats):
        ids, mask, docs = batch()
        tokens = int(mask.sum())
        order = ("forward", "collator") if repeat % 2 == 0 else ("collator", "forward")
        for who in order:
            torch.cuda.reset_peak_memory_stats()
            if who == "forward":
                times[who].append(timed(lambda: forward(ids, mask)))  # noqa: B023
            else:
                times[who].append(timed(lambda: collator.add_batch(ids, mask, docs)))  # noqa: B023
            peaks[who] = max(peaks[who], torch.cuda.max_memory_allocated())
    median = {who: sorted(t)[len(t) // 2] for who, t in times.items()}
    rate = {who: tokens / s for who, s in median.items()}
    flops = 2 * n_params * tokens / median["forward"]
    result = {
        "device": torch.cuda.get_device_name(),
        "arch": args.arch,
        "engine": collator.engine,
        "dtype": args.dtype,
        "parameters": n_params,
        "batch": [args.batch_size, args.tokens],
        "tokens_per_batch": tokens,
        "forward_tok_per_s": round(rate["forward"]),
        "collator_tok_per_s": round(rate["collator"]),
        "ratio": round(rate["collator"] / rate["forward"], 3),
        "forward_tflop_per_s": round(flops / 1e12, 1),
        "fill_phase_tok_per_s": round(tokens * len(fill) / sum(fill)) if fill else None,
        "first_call_s": round(first_call, 1),
        "peak_gib": {who: round(p / 2**30, 2) for who, p in peaks.items()},
        "times_s": times,
    }
    print(json.dumps(result, indent=1))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
        with profile(activities=activities) as prof:
            for _ in range(2):
                ids, mask, docs = batch()
                timed(lambda: collator.add_batch(ids, mask, docs))  # noqa: B023
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30))
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
