"""A GLU record dataset the size of the embedded model's (30 × 1536 neurons), made from random
running totals in seconds rather than collated: lookups cost the same whatever the numbers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from bench.common import EMBEDDED_MODEL

N_LAYERS = 30
N_NEURONS = 1536
N_DOCUMENTS = 3378  # the Shakespeare corpus at 512 tokens per document
MAX_TOKENS = 1024


def write_random_dataset(path: Path, seed: int = 0) -> dict[str, float]:
    """Write the file (rows sorted by layer and neuron, row groups of 128, as collation does);
    returns the seconds it took and its size."""
    from activations.collate.accumulator import LayerAccumulator
    from activations.collate.writer import accumulators_to_table, write_table_atomically
    from activations.records.schema import DEFAULT_TOP_K, GLU_LAYOUT

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_tokens = N_DOCUMENTS * MAX_TOKENS // 2
    accumulators = {}
    for layer in range(N_LAYERS):
        acc = LayerAccumulator(GLU_LAYOUT, N_NEURONS, DEFAULT_TOP_K)
        shares = rng.dirichlet(np.ones(4), size=N_NEURONS).T  # [Q, N]
        acc.counts = torch.from_numpy((shares * n_tokens).astype(np.int64))
        acc.sums = torch.from_numpy(rng.normal(size=tuple(acc.sums.shape)) * 100.0)
        shape = tuple(acc.top_value.shape)  # [P, k, N], strongest first along k
        scores = -np.sort(-rng.gamma(2.0, 1.0, size=shape), axis=1)
        signs = rng.choice([-1.0, 1.0], size=shape)
        acc.top_value = torch.from_numpy((scores * signs).astype(np.float32))
        acc.top_score = torch.from_numpy(scores.astype(np.float32))
        acc.top_doc = torch.from_numpy(rng.integers(0, N_DOCUMENTS, size=shape))
        acc.top_position = torch.from_numpy(rng.integers(0, MAX_TOKENS, size=shape))
        accumulators[layer] = acc
    metadata = {
        "model": EMBEDDED_MODEL,
        "corpus": "shakespeare",
        "documents": [0, N_DOCUMENTS],
        "n_documents": N_DOCUMENTS,
        "n_tokens": n_tokens,
        "top_k": DEFAULT_TOP_K,
        "max_tokens": MAX_TOKENS,
        "layers": list(range(N_LAYERS)),
        "n_neurons": N_NEURONS,
        "layout": "glu",
        "note": "random totals, for benchmarks",
    }
    write_table_atomically(accumulators_to_table(accumulators, n_tokens, metadata), path)
    return {"seconds": time.perf_counter() - began, "bytes": path.stat().st_size}
