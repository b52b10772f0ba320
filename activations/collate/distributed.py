"""Scale-out with PyTorch's own distributed engine (torchrun): shard documents, combine exactly.

Every rank takes a contiguous block of whole batches (document indices stay global), so each batch
is computed exactly as a single process would; counts, histograms and float64 sums are
all-reduced, top-k lists all-gathered and merged (ties to the lower document index). Rank 0
writes the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from activations.collate.accumulator import LayerAccumulator
from activations.collate.reduction import merge_top_k


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_distributed(device: str) -> RankInfo:
    """Join the process group torchrun set up: NCCL on CUDA, else gloo."""
    if not launched_by_torchrun():
        raise RuntimeError(
            "--distributed needs torchrun's environment (RANK, WORLD_SIZE): start it with "
            "`torchrun --nproc-per-node N -m activations.collate ...`"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    on_cuda = device.startswith("cuda") and torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(local_rank)  # NCCL's collectives run on the rank's own GPU
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    return RankInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def rank_device(device: str, info: RankInfo) -> str:
    """`cuda` means this rank's own GPU."""
    return f"cuda:{info.local_rank}" if device == "cuda" else device


def shard(start: int, stop: int, batch_size: int, info: RankInfo) -> tuple[int, int]:
    """This rank's [start, stop): a contiguous run of whole batches, as even as possible."""
    n_batches = -(-(stop - start) // batch_size)
    per_rank, extra = divmod(n_batches, info.world_size)
    first = info.rank * per_rank + min(info.rank, extra)
    count = per_rank + (1 if info.rank < extra else 0)
    begin = start + first * batch_size
    return min(begin, stop), min(begin + count * batch_size, stop)


def combine(accumulators: dict[int, LayerAccumulator], totals: list[int]) -> list[int]:
    """Make every rank's accumulators the exact totals over all ranks; returns summed totals."""
    for acc in accumulators.values():
        dist.all_reduce(acc.counts)
        dist.all_reduce(acc.sums)
        if acc.histogram is not None:  # integer counts: the sum is exact in any order
            dist.all_reduce(acc.histogram)
        gathered = []
        for tensor in (acc.top_score, acc.top_value, acc.top_doc, acc.top_position):
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor.contiguous())
            gathered.append(torch.cat(parts, dim=1))
        merged = merge_top_k(acc.k, *gathered)
        acc.top_score, acc.top_value, acc.top_doc, acc.top_position = merged
    device = next(iter(accumulators.values())).counts.device
    summed = torch.tensor(totals, dtype=torch.int64, device=device)
    dist.all_reduce(summed)
    return summed.tolist()


def finish() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
