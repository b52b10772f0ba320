"""The CPU collation kernel (glu_kernel.c): built with gcc on first use, called through ctypes.

Its layout (glu_kernel_layout.h) is generated from the vocabulary by kernel_header.py.

torch.compile fuses the reduction into one pass, but with its separate top-k merge it still
costs about a third of SmolLM2's forward pass on a CPU; the kernel reads each neuron's values
once from memory, keeps every accumulator in a register, and lets each document's maxima that
may enter the running lists wait a few documents to enter them together. It is built with
-march=native for the CPU it runs on: AVX-512 intrinsics on a CPU that has them, else the same
operations over vector extensions (glu_vectors.h), which gcc turns into AVX2, NEON or SSE2 code
(`isa()` says which). It needs gcc (or $CC); without one, or on GPUs, collation uses the
compiled reduction.
Its OpenMP threads are torch's own (the process has one libgomp), so they take turns with the
model's instead of competing with them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from activations.collate.accumulator import (
    LayerAccumulator,
    in_list_order,
    to_list_order,
)
from activations.collate.kernel_header import HEADER, VECTOR, layout_header
from activations.collate.reduction import document_range
from activations.records.schema import GLU_LAYOUT
from registry.locations import neurons_home

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("glu_kernel.c")
VECTORS = Path(__file__).with_name("glu_vectors.h")  # AVX-512, or the same over vector extensions
HISTOGRAM = Path(__file__).with_name("glu_histogram.h")  # the value histogram's pass
FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", "-std=c11")
NATIVE = "-march=native"
_pointer, _i64 = ctypes.c_void_p, ctypes.c_int64
WAIT_SLOTS = 8  # documents of candidates that wait to enter their lists together


class TopLists(ctypes.Structure):
    """glu_kernel.c's TopLists: the running lists and the waiting room, as pointers."""

    _fields_ = [
        ("score", _pointer),
        ("value", _pointer),
        ("doc", _pointer),
        ("position", _pointer),
        ("threshold", _pointer),
        ("wait_value", _pointer),
        ("wait_position", _pointer),
        ("wait_doc", _pointer),
        ("wait_lanes", _pointer),
        ("waiting", _pointer),
        ("slots", _i64),
    ]


class Batch(ctypes.Structure):
    """glu_kernel.c's Batch: one batch of a layer and the totals it adds to."""

    _fields_ = [
        ("hooks", _pointer * len(GLU_LAYOUT.hooks)),
        ("valid", _pointer),
        ("docs", _pointer),
        ("sign", _pointer),
        ("B", _i64),
        ("T", _i64),
        ("N", _i64),
        ("K", _i64),
        ("counts", _pointer),
        ("sums", _pointer),
        ("histogram", _pointer),
    ]


def cpu_flags() -> str:
    """This CPU's model and feature flags (empty where /proc/cpuinfo is missing)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    wanted = ("model name", "flags")
    return "\n".join(sorted({line for line in info.splitlines() if line.startswith(wanted)}))


def compile_kernel(compiler: str, target: str, out: Path) -> None:
    """Compile the kernel for `target` (an -march flag) into `out`; the layout is generated
    afresh, so it follows the vocabulary even before the committed header is rewritten."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        c_file, built = Path(tmp) / SOURCE.name, Path(tmp) / out.name
        c_file.write_text(SOURCE.read_text())
        (Path(tmp) / VECTORS.name).write_text(VECTORS.read_text())
        (Path(tmp) / HISTOGRAM.name).write_text(HISTOGRAM.read_text())
        (Path(tmp) / HEADER.name).write_text(layout_header())
        subprocess.run(
            [compiler, *FLAGS, target, str(c_file), "-o", str(built)],
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(built, out)  # atomic: a concurrent build of the same key is identical


def _build(compiler: str) -> Path:
    """Compile into $NEURONS_HOME/kernels, keyed by source, layout, flags, compiler and CPU
    (-march=native), so a home shared by other machines never runs another CPU's build."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    ident = [SOURCE.read_text(), VECTORS.read_text(), HISTOGRAM.read_text(), layout_header()]
    ident += [*FLAGS, NATIVE]
    ident += [version, platform.machine(), cpu_flags()]
    key = hashlib.sha256("\0".join(ident).encode()).hexdigest()[:16]
    library = neurons_home() / "kernels" / f"glu_kernel-{key}.so"
    if not library.exists():
        library.parent.mkdir(parents=True, exist_ok=True)
        compile_kernel(compiler, NATIVE, library)
    return library


def compiler() -> str | None:
    """$CC, else gcc, else cc: the first that is installed, or None."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "cc"]
    return next((name for name in names if shutil.which(name)), None)


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernel, or None where it cannot run here (then the caller falls back)."""
    if os.environ.get("NEURONS_NO_KERNEL"):
        return None
    cc = compiler()
    if cc is None:
        print(
            "neurons: no C compiler (gcc, cc or $CC) found; collation uses torch instead of "
            "the CPU kernel",
            file=sys.stderr,
        )
        return None
    try:
        library = ctypes.CDLL(str(_build(cc)))
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        log.warning("the CPU collation kernel did not build (%s); using torch.compile", detail)
        return None
    library.glu_fold_batch.restype = ctypes.c_int
    library.glu_fold_batch.argtypes = [ctypes.POINTER(Batch), ctypes.POINTER(TopLists)]
    library.glu_admit_all.restype = None
    library.glu_admit_all.argtypes = [_i64, _i64, ctypes.POINTER(TopLists)]
    library.glu_isa.restype = ctypes.c_char_p
    library.glu_isa.argtypes = []
    log.info("the CPU collation kernel runs here with %s vectors", library.glu_isa().decode())
    return library


def available() -> bool:
    return load() is not None


def isa() -> str | None:
    """The vectors the kernel was built with here ("avx512", "avx2", "neon", "sse2",
    "generic"), or None where it is not available."""
    library = load()
    return None if library is None else library.glu_isa().decode()


def waiting_room(n_pairs: int, n_neurons: int) -> list[torch.Tensor]:
    """Where candidates wait to enter their lists (glu_kernel.c, TopLists): value, position,
    document, lanes, slots in use; empty at first."""
    vectors = -(-n_neurons // VECTOR)
    lanes = (n_pairs, vectors, WAIT_SLOTS, VECTOR)
    return [
        torch.zeros(lanes, dtype=torch.float32),
        torch.zeros(lanes, dtype=torch.int32),
        torch.zeros(lanes[:3], dtype=torch.int64),
        torch.zeros(lanes[:3], dtype=torch.int16),
        torch.zeros(lanes[:2], dtype=torch.int32),
    ]


def _library() -> ctypes.CDLL:
    library = load()
    if library is None:
        raise RuntimeError("the CPU collation kernel is not available on this machine")
    return library


class WaitingRoom:
    """What the kernel holds for one accumulator (its `held`): candidates waiting to enter the
    lists together, and the lists' k-th scores, which the kernel keeps up to date."""

    def __init__(self, acc: LayerAccumulator) -> None:
        acc.lists = [to_list_order(t) for t in acc.lists]
        self.threshold = acc.lists[0][:, -1, :].contiguous()
        self.room = waiting_room(len(acc.lists[0]), acc.n_neurons)

    def pointers(self, acc: LayerAccumulator) -> TopLists:
        if not all(in_list_order(t) for t in acc.lists):
            raise ValueError("the top lists must be [P, k, N] views of contiguous [P, N, k]")
        return TopLists(
            *(t.data_ptr() for t in acc.lists),
            self.threshold.data_ptr(),
            *(t.data_ptr() for t in self.room),
            WAIT_SLOTS,
        )

    def admit(self, acc: LayerAccumulator) -> None:
        """Every waiting candidate enters its list or drops out."""
        top = self.pointers(acc)
        _library().glu_admit_all(acc.n_neurons, acc.k, ctypes.byref(top))


def fold_batch(
    acc: LayerAccumulator,
    values: dict[str, torch.Tensor],
    valid: torch.Tensor,
    docs: torch.Tensor,
    sign: torch.Tensor | None = None,
) -> None:
    """Add one batch ([B, T, N] float32 per GLU hook, valid [B, T], docs [B]) to the running
    totals of `acc`, in place; without the product hook's tensor (hook_post), the kernel
    multiplies its factors: a quarter less to read. `sign` ([N] of ±1, --refactor-glu) flips
    the hooks the vocabulary says. Where `acc` counts a histogram, the kernel counts it too.
    Candidates may wait in acc.held until the lists are read."""
    library = _library()
    room = acc.held
    if not isinstance(room, WaitingRoom) or acc.has_pending():
        acc.settle()
        room = acc.held = WaitingRoom(acc)
    inputs = [values[h].contiguous() if h in values else None for h in GLU_LAYOUT.hooks]
    batch, length, n_neurons = inputs[0].shape
    if n_neurons != acc.n_neurons:
        raise ValueError(f"the accumulator is for {acc.n_neurons} neurons, not {n_neurons}")
    histogram = acc.histogram
    if not all(t.is_contiguous() for t in (acc.counts, acc.sums)):
        raise ValueError("counts and sums must be contiguous")
    if histogram is not None and not (histogram.is_contiguous() and histogram.dtype == torch.int64):
        raise ValueError("the histogram must be contiguous int64")
    valid = valid.reshape(batch, length).to(torch.uint8).contiguous()
    docs = docs.to(torch.int64).contiguous()
    _, last = document_range(docs)
    sign = None if sign is None else sign.to(torch.float32).contiguous()
    arguments = Batch(
        (_pointer * len(inputs))(*(None if t is None else t.data_ptr() for t in inputs)),
        valid.data_ptr(),
        docs.data_ptr(),
        None if sign is None else sign.data_ptr(),
        batch,
        length,
        n_neurons,
        acc.k,
        acc.counts.data_ptr(),
        acc.sums.data_ptr(),
        None if histogram is None else histogram.data_ptr(),
    )
    if library.glu_fold_batch(ctypes.byref(arguments), ctypes.byref(room.pointers(acc))):
        raise MemoryError("the collation kernel could not allocate its copy buffers")
    acc.last_doc = max(acc.last_doc, last)
