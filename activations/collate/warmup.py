"""torch.compile's first compilation of the reduction: said before it starts (it takes tens of
seconds on a small CPU), timed, and remembered under $NEURONS_HOME so that the next run says how
long it will take and `--engine auto` can weigh it against the job: a job too small to repay it
runs eager instead.

The eager reduction costs about EAGER_EXTRA_NS more per neuron and token than the compiled one
(measured on 2 cores of an AMD EPYC, Zen 3, SmolLM2-135M: about 300-700 ns, more under load);
compiling pays where that extra time over the job is longer than the compilation.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator

import torch

from registry.locations import neurons_home

EAGER_EXTRA_NS = 300.0
FIRST_GUESS_S = 45.0  # before any compilation was timed here


def _history_path():
    return neurons_home() / "kernels" / f"compile-seconds-torch-{torch.__version__}.json"


def expected_seconds() -> float:
    """The last compilation's time here, else a first guess."""
    try:
        return float(json.loads(_history_path().read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return FIRST_GUESS_S


def compiling_pays(neuron_tokens: int | None) -> bool:
    """Whether a job of `neuron_tokens` (None: unknown, taken as large) repays compiling."""
    if neuron_tokens is None:
        return True
    return neuron_tokens * EAGER_EXTRA_NS * 1e-9 > expected_seconds()


_compiled_here = False  # a process compiles the reduction once; later engines reuse its code


@contextlib.contextmanager
def announced() -> Iterator[None]:
    global _compiled_here
    if _compiled_here:
        yield
        return
    _compiled_here = True
    guess = expected_seconds()
    print(
        f"compiling the reduction for this model (first run only, ~{guess:.0f} s)…",
        file=sys.stderr,
        flush=True,
    )
    began = time.perf_counter()
    yield
    seconds = time.perf_counter() - began
    print(f"compiled in {seconds:.0f} s", file=sys.stderr, flush=True)
    try:
        path = _history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": round(seconds, 1)}))
    except OSError:
        pass
