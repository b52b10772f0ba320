"""The CPU collation kernel (glu_kernel.c): built with gcc on first use, called through ctypes.

torch.compile fuses the reduction into one pass, but with its separate top-k merge it still
costs about a third of SmolLM2's forward pass on a CPU; the kernel reads each neuron's values
once from memory, keeps every accumulator in a register, and lets each document's maxima that
may enter the running lists wait a few documents to enter them together. It needs an
x86 CPU with AVX-512 and gcc; elsewhere (and on GPUs) collation uses the compiled reduction.
Its OpenMP threads are torch's own (the process has one libgomp), so they take turns with the
model's instead of competing with them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from activations.derived_scalars import HOOK_POST, HOOK_PRE, HOOK_PRE_LINEAR, SWISH
from activations.schema import GLU_LAYOUT, QUADRANT_SIGNS
from registry.locations import neurons_home

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("glu_kernel.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11")
FLIPPED_HOOKS = (HOOK_PRE_LINEAR, HOOK_POST)  # --refactor-glu flips the sign of these
_pointer, _i64 = ctypes.c_void_p, ctypes.c_int64
VECTOR = 16  # neurons per vector register (W in glu_kernel.c): 512 bits of float32


def layout_header() -> str:
    """The GLU layout as C macros, from schema.py: one place for quadrants, hooks and pairs.

    Every accumulator is a variable of its own (count_<q>, sum_<q>_<h>, best_<p>, at_<p>), which
    gcc keeps in a register; arrays of vectors it would keep in memory.
    """
    hooks, quadrants, pairs = GLU_LAYOUT.hooks, GLU_LAYOUT.quadrants, GLU_LAYOUT.max_pairs()
    gate, linear = hooks.index(HOOK_PRE), hooks.index(HOOK_PRE_LINEAR)
    sign_mask = {(0, 1): "g_pos", (0, -1): "g_neg", (1, 1): "u_pos", (1, -1): "u_neg"}
    swish, post = hooks.index(SWISH), hooks.index(HOOK_POST)
    # pass 1 reads the activations in place (a token every `stride` floats), flips in and
    # post, multiplies post where it is not read and keeps the results in `copy`; pass 2 reads
    # that copy as it is
    load, load_copy, store = [], [], []
    for h, name in enumerate(hooks):
        value = f"_mm512_maskz_loadu_ps(live, rows[{h}] + t * stride)"
        if name in FLIPPED_HOOKS:
            value = f"_mm512_mul_ps({value}, flip)"
        if h == post:  # without its tensor, the product of act and the (flipped) in
            value = f"product ? _mm512_mul_ps(v_{swish}, v_{linear}) : {value}"
        load.append(f"const __m512 v_{h} = {value};")
        load_copy.append(f"const __m512 v_{h} = _mm512_load_ps(copy[{h}] + t * W);")
        store.append(f"_mm512_store_ps(copy[{h}] + t * W, v_{h});")
    masks = []
    for which, h in ((0, gate), (1, linear)):
        for sign, cmp in ((1, "_CMP_GT_OQ"), (-1, "_CMP_LT_OQ")):
            masks.append(
                f"const __mmask16 {sign_mask[which, sign]} = "
                f"_mm512_cmp_ps_mask(v_{h}, zero, {cmp});"
            )
    for q, name in enumerate(quadrants):
        gate_sign, in_sign = QUADRANT_SIGNS[name]
        masks.append(
            f"const __mmask16 in_q_{q} = {sign_mask[0, gate_sign]} & {sign_mask[1, in_sign]};"
        )
    counted = [(q, h) for q in range(len(quadrants)) for h in range(len(hooks))]
    sum_declare = [f"__m512i count_{q} = zero_i;" for q in range(len(quadrants))]
    sum_declare += [f"__m512 sum_{q}_{h} = zero;" for q, h in counted]
    sum_step = [
        f"count_{q} = _mm512_mask_add_epi32(count_{q}, in_q_{q}, count_{q}, one);"
        for q in range(len(quadrants))
    ]
    sum_step += [
        f"sum_{q}_{h} = _mm512_mask_add_ps(sum_{q}_{h}, in_q_{q}, sum_{q}_{h}, v_{h});"
        for q, h in counted
    ]
    sum_store = [f"_mm512_storeu_si512(count[{q}], count_{q});" for q in range(len(quadrants))]
    sum_store += [f"_mm512_storeu_ps(sum[{q}][{h}], sum_{q}_{h});" for q, h in counted]
    pair_index = [(quadrants.index(q), hooks.index(h)) for q, h in pairs]
    keyed = sorted({h for _, h in pair_index})
    max_declare = [
        f"__m512i best_{p} = zero_i, at_{p} = _mm512_set1_epi32(-1);" for p in range(len(pairs))
    ]
    max_step = [
        f"const __m512i key_{h} = "
        f"_mm512_add_epi32(_mm512_rol_epi32(_mm512_castps_si512(v_{h}), 1), one);"
        for h in keyed
    ]
    for p, (q, h) in enumerate(pair_index):
        max_step.append(
            f"{{ const __mmask16 up = _mm512_mask_cmp_epu32_mask(in_q_{q}, key_{h}, best_{p}, "
            f"_MM_CMPINT_NLE); best_{p} = _mm512_mask_mov_epi32(best_{p}, up, key_{h}); "
            f"at_{p} = _mm512_mask_mov_epi32(at_{p}, up, here); }}"
        )
    max_store = [
        f"_mm512_storeu_si512(best[{p}], best_{p}); _mm512_storeu_si512(at[{p}], at_{p});"
        for p in range(len(pairs))
    ]

    def macro(name: str, lines: list[str]) -> str:
        return f"#define {name} " + " \\\n    ".join(lines)

    return "\n".join(
        [
            f"#define W {VECTOR}",
            f"#define NQ {len(quadrants)}",
            f"#define NH {len(hooks)}",
            f"#define NP {len(pairs)}",
            f"#define POST_HOOK {post}",
            macro("LOAD_TOKEN", load + masks),
            macro("LOAD_COPY", load_copy + masks),
            macro("STORE_COPY", store),
            macro("SUM_DECLARE", sum_declare),
            macro("SUM_STEP", sum_step),
            macro("SUM_STORE(count, sum)", sum_store),
            macro("MAX_DECLARE", max_declare),
            macro("MAX_STEP", max_step),
            macro("MAX_STORE(best, at)", max_store),
            "",
        ]
    )


def cpu_flags() -> str:
    """This CPU's model and feature flags (empty where /proc/cpuinfo is missing)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    wanted = ("model name", "flags")
    return "\n".join(sorted({line for line in info.splitlines() if line.startswith(wanted)}))


def cpu_has_avx512() -> bool:
    flags = f" {cpu_flags()} ".replace("\n", " ")
    return " avx512f " in flags and " avx512bw " in flags


def _build(compiler: str) -> Path:
    """Compile into $NEURONS_HOME/kernels, keyed by source, layout, flags, compiler and CPU
    (-march=native), so a home shared by other machines never runs another CPU's build."""
    source = layout_header() + SOURCE.read_text()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    ident = [source, *FLAGS, version, cpu_flags()]
    key = hashlib.sha256("\0".join(ident).encode()).hexdigest()[:16]
    library = neurons_home() / "kernels" / f"glu_kernel-{key}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
        c_file, built = Path(tmp) / "glu_kernel.c", Path(tmp) / "glu_kernel.so"
        c_file.write_text(source)
        subprocess.run(
            [compiler, *FLAGS, str(c_file), "-o", str(built)],
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(built, library)  # atomic: a concurrent build of the same key is identical
    return library


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernel, or None where it cannot run here (then the caller falls back)."""
    compiler = os.environ.get("CC", "gcc")
    if os.environ.get("NEURONS_NO_KERNEL") or not cpu_has_avx512() or not shutil.which(compiler):
        return None
    try:
        library = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        log.warning("the CPU collation kernel did not build (%s); using torch.compile", detail)
        return None
    fold = library.glu_fold_batch
    fold.restype = None
    fold.argtypes = [_pointer, _pointer, _pointer, _pointer, _i64, _i64, _i64, _i64]
    fold.argtypes += [_pointer] * 7 + [_pointer] * 5 + [_i64]
    admit = library.glu_admit_all
    admit.restype = None
    admit.argtypes = [_i64, _i64] + [_pointer] * 5 + [_pointer] * 5 + [_i64]
    return library


def available() -> bool:
    return load() is not None


WAIT_SLOTS = 8  # documents of candidates that wait to enter their lists together


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


def _check_lists(top: list[torch.Tensor], threshold: torch.Tensor) -> None:
    if not threshold.is_contiguous():
        raise ValueError("threshold must be contiguous")
    if not all(in_list_order(t) for t in top):
        raise ValueError("the top lists must be [P, k, N] views of contiguous [P, N, k] tensors")


def fold_batch(
    values: dict[str, torch.Tensor],
    valid: torch.Tensor,
    docs: torch.Tensor,
    sign: torch.Tensor | None,
    counts: torch.Tensor,
    sums: torch.Tensor,
    top: list[torch.Tensor],
    threshold: torch.Tensor,
    waiting: list[torch.Tensor],
) -> None:
    """Add one batch ([B, T, N] per GLU hook, valid [B, T], docs [B]) to the running totals,
    (without hook_post, the kernel multiplies swish and in: a quarter less to read),
    in place: counts [Q, N] int64, sums [Q, H, N] float64, the top lists (score, value,
    document, position), [P, k, N] views of [P, N, k] contiguous tensors (LIST_ORDER), and
    threshold [P, N], the lists' k-th scores. Candidates may stay in `waiting` (waiting_room)
    until admit_all."""
    library = _library()
    inputs = [values[h].contiguous() if h in values else None for h in GLU_LAYOUT.hooks]
    batch, length, n_neurons = inputs[0].shape
    valid = valid.reshape(batch, length).to(torch.uint8).contiguous()
    docs = docs.to(torch.int64).contiguous()
    sign = None if sign is None else sign.to(torch.float32).contiguous()
    if not all(t.is_contiguous() for t in (counts, sums)):
        raise ValueError("counts and sums must be contiguous")
    _check_lists(top, threshold)
    room = (len(top[0]), -(-n_neurons // VECTOR), WAIT_SLOTS, VECTOR)
    if top[0].shape[2] != n_neurons or waiting[0].shape != room:
        raise ValueError(f"lists and waiting room must be for {n_neurons} neurons")
    pointers = (_pointer * len(inputs))(*(None if t is None else t.data_ptr() for t in inputs))
    library.glu_fold_batch(
        ctypes.cast(pointers, _pointer),
        valid.data_ptr(),
        docs.data_ptr(),
        None if sign is None else sign.data_ptr(),
        batch,
        length,
        n_neurons,
        top[0].shape[1],
        counts.data_ptr(),
        sums.data_ptr(),
        *(t.data_ptr() for t in top),
        threshold.data_ptr(),
        *(t.data_ptr() for t in waiting),
        WAIT_SLOTS,
    )


def admit_all(
    top: list[torch.Tensor], threshold: torch.Tensor, waiting: list[torch.Tensor]
) -> None:
    """Every waiting candidate enters its list or drops out, and the waiting room empties."""
    _check_lists(top, threshold)
    n_neurons, k = top[0].shape[2], top[0].shape[1]
    _library().glu_admit_all(
        n_neurons,
        k,
        *(t.data_ptr() for t in top),
        threshold.data_ptr(),
        *(t.data_ptr() for t in waiting),
        WAIT_SLOTS,
    )


LIST_ORDER = (0, 2, 1)  # [P, k, N] <-> [P, N, k]: the kernel inserts into one contiguous column


def in_list_order(tensor: torch.Tensor) -> bool:
    return tensor.permute(*LIST_ORDER).is_contiguous()


def to_list_order(tensor: torch.Tensor) -> torch.Tensor:
    """The same [P, k, N] values, stored [P, N, k]."""
    if in_list_order(tensor):
        return tensor
    return tensor.permute(*LIST_ORDER).contiguous().permute(*LIST_ORDER)
