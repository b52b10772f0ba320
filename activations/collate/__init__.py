"""Collation: run a model over a corpus and reduce every MLP neuron to one GLU quadrant record.

config.py     what a collation is asked to do (and its command-line options)
run.py        collate(): model, corpus, batches, checkpoints, the file
collator.py   one forward pass per batch, every wanted layer captured inside it
engines.py    how a layer's activations are reduced: torch (eager, compiled) or the C kernel
accumulator.py  running totals, value histograms and top-k lists of one layer
reduction.py  the torch reduction and the top-k merge
kernel*.py, glu_kernel.c, glu_kernel_layout.h   the CPU kernel and its generated layout
writer.py     totals <-> Parquet; merge.py: exact merges of files; distributed.py: torchrun
heap.py       keeping freed memory in the process while collating

`python -m activations.collate ...` is the entry torchrun starts on every rank.
"""

from activations.collate.collator import Collator
from activations.collate.config import CollateConfig
from activations.collate.run import collate

__all__ = ["CollateConfig", "Collator", "collate"]
