"""The CPU collation kernel against the torch reduction (LayerAccumulator.add), and its build."""

from __future__ import annotations

import platform
import shutil

import pytest
import torch
import torch.nn.functional as F

from activations.collate import kernel as glu_kernel
from activations.collate.accumulator import TOP_NAMES, LayerAccumulator
from activations.collate.kernel_header import HEADER, layout_header
from activations.collate.reduction import batch_stats
from activations.records.schema import GLU_LAYOUT
from registry.vocabulary import HOOK_POST, HOOK_PRE, HOOK_PRE_LINEAR, SWISH

needs_kernel = pytest.mark.skipif(
    not glu_kernel.available(), reason="the collation kernel needs gcc"
)


def activations(generator: torch.Generator, b: int, t: int, n: int) -> dict[str, torch.Tensor]:
    """Values on a coarse grid (many exact ties), exact zeros in gate and in, and the first
    token alike in every document (ties across documents, as a BOS token gives)."""
    gate = torch.randn(b, t, n, generator=generator).round(decimals=1)
    linear = torch.randn(b, t, n, generator=generator).round(decimals=1)
    gate[:, :, 0], linear[:, :, 1 % n] = 0.0, 0.0
    gate[:, 0], linear[:, 0] = gate[0, 0], linear[0, 0]
    swish = F.silu(gate)
    return {HOOK_PRE: gate, HOOK_PRE_LINEAR: linear, SWISH: swish, HOOK_POST: swish * linear}


def assert_same_totals(torch_acc: LayerAccumulator, kernel_acc: LayerAccumulator) -> None:
    assert torch.equal(torch_acc.counts, kernel_acc.counts)
    assert torch.equal(torch_acc.histogram, kernel_acc.histogram)
    torch.testing.assert_close(torch_acc.sums, kernel_acc.sums, rtol=1e-5, atol=1e-4)
    for name in TOP_NAMES:
        assert torch.equal(getattr(torch_acc, name), getattr(kernel_acc, name)), name


SHAPES = [(3, 7, 20, 4, 5), (1, 1, 5, 16, 3), (2, 9, 300, 16, 12), (4, 33, 17, 2, 7)]


@needs_kernel
@pytest.mark.parametrize(("b", "t", "n", "k", "batches"), [*SHAPES, (2, 64, 96, 16, 9)])
@pytest.mark.parametrize("with_post", [True, False])
@pytest.mark.parametrize("flipped", [False, True])
def test_kernel_equals_the_torch_reduction(b, t, n, k, batches, with_post, flipped):
    """Neuron counts that are not a multiple of 16, fewer documents than k, padding, ties,
    exact zeros, GLUScope's sign flips, and hook_post read or computed as swish * in."""
    generator = torch.Generator().manual_seed(b * 1000 + t * 10 + n)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flipped else None
    by_torch = LayerAccumulator(GLU_LAYOUT, n, k)
    by_kernel = LayerAccumulator(GLU_LAYOUT, n, k)
    for i in range(batches):
        values = activations(generator, b, t, n)
        valid = torch.ones(b, t, dtype=torch.bool)
        valid[-1, t // 2 + 1 :] = False  # right padding
        docs = torch.arange(i * b, (i + 1) * b)
        seen = dict(values)
        if sign is not None:
            seen[HOOK_PRE_LINEAR] = values[HOOK_PRE_LINEAR] * sign
            seen[HOOK_POST] = values[HOOK_POST] * sign
        by_torch.add(batch_stats(GLU_LAYOUT, seen, valid.unsqueeze(-1)), docs)
        if not with_post:
            del values[HOOK_POST]
        glu_kernel.fold_batch(by_kernel, values, valid, docs, sign)
    assert_same_totals(by_torch, by_kernel)


@needs_kernel
@pytest.mark.parametrize("read_every", [1, 3, 5])
def test_lists_read_between_batches_hold_every_waiting_candidate(read_every):
    """Candidates wait to enter their lists WAIT_SLOTS documents at a time; reading the lists
    (a checkpoint) admits them, and the run goes on as if it had never stopped."""
    generator = torch.Generator().manual_seed(read_every)
    by_torch, by_kernel = LayerAccumulator(GLU_LAYOUT, 40, 16), LayerAccumulator(GLU_LAYOUT, 40, 16)
    valid = torch.ones(3, 11, dtype=torch.bool)
    for i in range(3 * glu_kernel.WAIT_SLOTS):  # rooms fill and empty several times
        values, docs = activations(generator, 3, 11, 40), torch.arange(3 * i, 3 * i + 3)
        by_torch.add(batch_stats(GLU_LAYOUT, values, valid.unsqueeze(-1)), docs)
        glu_kernel.fold_batch(by_kernel, values, valid, docs)
        if i % read_every == 0:
            assert_same_totals(by_torch, by_kernel)
    assert_same_totals(by_torch, by_kernel)


@needs_kernel
def test_documents_in_any_order_and_a_checkpoint_while_candidates_wait():
    """Later batches of lower document indices win ties against waiting and listed candidates;
    a state saved while candidates wait and loaded into a new accumulator goes on alike."""
    generator = torch.Generator().manual_seed(11)
    by_torch, by_kernel = LayerAccumulator(GLU_LAYOUT, 40, 16), LayerAccumulator(GLU_LAYOUT, 40, 16)
    valid = torch.ones(2, 6, dtype=torch.bool)
    batches = list(range(2 * glu_kernel.WAIT_SLOTS))
    for n, i in enumerate(reversed(batches)):  # the highest document indices first
        values, docs = activations(generator, 2, 6, 40), torch.tensor([2 * i + 1, 2 * i])
        by_torch.add(batch_stats(GLU_LAYOUT, values, valid.unsqueeze(-1)), docs)
        glu_kernel.fold_batch(by_kernel, values, valid, docs)
        if n == len(batches) // 2:  # a checkpoint and a resume
            state = by_kernel.state_dict()
            by_kernel = LayerAccumulator(GLU_LAYOUT, 40, 16)
            by_kernel.load_state_dict(state)
    assert_same_totals(by_torch, by_kernel)


@needs_kernel
def test_kernel_and_torch_batches_mix_in_one_accumulator():
    """Lists the torch path changed (merge, resume) are picked up by the kernel, and back."""
    generator = torch.Generator().manual_seed(7)
    mixed, reference = LayerAccumulator(GLU_LAYOUT, 40, 4), LayerAccumulator(GLU_LAYOUT, 40, 4)
    valid = torch.ones(2, 9, dtype=torch.bool)
    for i in range(8):
        values, docs = activations(generator, 2, 9, 40), torch.arange(2 * i, 2 * i + 2)
        reference.add(batch_stats(GLU_LAYOUT, values, valid.unsqueeze(-1)), docs)
        if i % 3 == 0:
            mixed.add(batch_stats(GLU_LAYOUT, values, valid.unsqueeze(-1)), docs)
        else:
            glu_kernel.fold_batch(mixed, values, valid, docs)
    assert_same_totals(reference, mixed)


def test_the_committed_layout_header_is_current():
    """glu_kernel_layout.h is generated from the vocabulary; rewrite it with
    `python -m activations.collate.kernel_header` after changing GLU_SITES or QUADRANTS."""
    assert HEADER.read_text() == layout_header()


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not shutil.which("gcc"),
    reason="builds the kernel with gcc for x86-64",
)
@pytest.mark.parametrize(
    ("target", "isa"),
    [("-march=skylake-avx512", "avx512"), ("-march=x86-64-v3", "avx2"), ("-march=x86-64", "sse2")],
)
def test_the_kernel_compiles_for_every_x86_level_on_any_x86_machine(tmp_path, target, isa):
    """The kernel's AVX-512 path and its vector-extension path (AVX2, SSE2) each must compile
    on every x86 machine with gcc, whichever of them runs here."""
    out = tmp_path / "glu_kernel.so"
    glu_kernel.compile_kernel("gcc", target, out)
    assert out.stat().st_size > 0
    assert f"{isa}\0".encode() in out.read_bytes()  # glu_isa()'s string


def test_the_kernel_compiles_for_avx512_on_any_x86_machine(tmp_path):
    """Where the kernel runs without AVX-512, its AVX-512 path still must compile."""
    if platform.machine() not in ("x86_64", "AMD64") or not shutil.which("gcc"):
        pytest.skip("builds the AVX-512 kernel with gcc for x86-64")
    out = tmp_path / "glu_kernel.so"
    glu_kernel.compile_kernel("gcc", "-march=skylake-avx512", out)
    assert out.stat().st_size > 0


@needs_kernel
def test_the_kernel_names_the_vectors_it_was_built_with():
    assert glu_kernel.isa() in ("avx512", "avx2", "neon", "sse2", "generic")
