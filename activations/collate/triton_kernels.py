"""The Triton kernel of triton_engine.py, at module level (Triton's interpreter, which the tests
run it under, reads a kernel's helpers from its module). Imported only where Triton is used;
whether it is interpreted (TRITON_INTERPRET=1) is fixed when this module is imported.

The hooks are a block dimension (BLOCK_H, the vocabulary's hooks padded to a power of two), so
the kernel follows the vocabulary: a derived scalar added there is one more row of the block.
The four slots are the four sign pairs of (gate, in); triton_engine maps the vocabulary's
quadrants onto them by their signs. Each real token also adds one (an atomic add) to its
(slot, bin, neuron) count of the value histogram of the POST hook (slot 4: in no quadrant).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def key_of(v, pos):
    bits = v.to(tl.int32, bitcast=True).to(tl.int64)
    return ((bits & 0x7FFFFFFF) << 32) | ((bits < 0).to(tl.int64) << 31) | (2147483647 - pos)


@triton.jit
def fold(q, block, keyed, c, s, k):
    """One sign pair's tokens `q` [T, N] of a block of every hook's values [H, T, N]."""
    c += tl.sum(q.to(tl.int32), axis=0)
    s += tl.sum(tl.where(q[None, :, :], block, 0.0), axis=1)
    k = tl.maximum(k, tl.max(tl.where(q[None, :, :], keyed, -1), axis=1))
    return c, s, k


@triton.jit
def put(slot, counts, sums, keys, b, n, nmask, h, hmask, B, N, H, c, s, k):
    tl.store(counts + (slot * B + b) * N + n, c, mask=nmask)
    at = ((slot * H + h[:, None]) * B + b) * N + n[None, :]
    m = hmask[:, None] & nmask[None, :]
    tl.store(sums + at, s, mask=m)
    tl.store(keys + at, k, mask=m)


@triton.jit
def histogram_bin(v, ZERO: tl.constexpr, STEPS: tl.constexpr, BASE: tl.constexpr):
    """reduction.histogram_bins: the bin of each value from its float32 bits."""
    bits = v.to(tl.int32, bitcast=True)
    magnitude = bits & 0x7FFFFFFF
    negative = bits < 0
    step = (tl.where(negative, magnitude - 1, magnitude) >> 23) - BASE
    step = tl.minimum(tl.maximum(step, 0), STEPS - 1)
    signed = tl.where(negative, ZERO - 1 - step, ZERO + 1 + step)
    return tl.where(magnitude == 0, ZERO, signed)


@triton.jit
def stats(values, plane_at, valid, counts, sums, keys, hist, B, T, N, H,
          GATE: tl.constexpr, IN: tl.constexpr, POST: tl.constexpr, BLOCK_H: tl.constexpr,
          HAS_HIST: tl.constexpr, BINS: tl.constexpr, ZERO: tl.constexpr,
          STEPS: tl.constexpr, BASE: tl.constexpr, NONE: tl.constexpr,
          BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    b = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    h = tl.arange(0, BLOCK_H)
    hmask = h < H
    # one hook's [B, T, N] values: int64 from memory (Triton makes an int argument of 1 a
    # constant, and h * B * T * N can pass 2^31)
    plane = tl.load(plane_at)
    zi = tl.zeros((BLOCK_N,), tl.int32)
    zf = tl.zeros((BLOCK_H, BLOCK_N), tl.float32)
    zk = tl.full((BLOCK_H, BLOCK_N), -1, tl.int64)
    c0, c1, c2, c3 = zi, zi, zi, zi
    s0, s1, s2, s3 = zf, zf, zf, zf
    k0, k1, k2, k3 = zk, zk, zk, zk
    for t0 in range(0, T, BLOCK_T):
        t = t0 + tl.arange(0, BLOCK_T)
        ok = tl.load(valid + b * T + t, mask=t < T, other=0) != 0
        m = ok[:, None] & nmask[None, :]
        at = (b * T + t[:, None]).to(tl.int64) * N + n[None, :]
        m3 = hmask[:, None, None] & m[None, :, :]
        planes = h.to(tl.int64)[:, None, None] * plane
        block = tl.load(values + planes + at[None, :, :], mask=m3, other=0.0)
        block = block.to(tl.float32)
        g = tl.load(values + GATE * plane + at, mask=m, other=0.0).to(tl.float32)
        u = tl.load(values + IN * plane + at, mask=m, other=0.0).to(tl.float32)
        pos = t[:, None].to(tl.int64) + tl.zeros((BLOCK_T, BLOCK_N), tl.int64)
        keyed = key_of(block, pos[None, :, :])
        gp, gn, up, un = (g > 0) & m, (g < 0) & m, u > 0, u < 0
        if HAS_HIST:  # one count per real token: group (slot, NONE: none), bin, neuron
            p = tl.load(values + POST * plane + at, mask=m, other=0.0).to(tl.float32)
            group = tl.where(gp & up, 0, tl.where(gp & un, 1, tl.where(gn & up, 2, NONE)))
            group = tl.where(gn & un, 3, group)
            cell = group * BINS + histogram_bin(p, ZERO, STEPS, BASE)
            ones = tl.full((BLOCK_T, BLOCK_N), 1, tl.int32)
            tl.atomic_add(hist + cell.to(tl.int64) * N + n[None, :], ones, mask=m)
        c0, s0, k0 = fold(gp & up, block, keyed, c0, s0, k0)
        c1, s1, k1 = fold(gp & un, block, keyed, c1, s1, k1)
        c2, s2, k2 = fold(gn & up, block, keyed, c2, s2, k2)
        c3, s3, k3 = fold(gn & un, block, keyed, c3, s3, k3)
    put(0, counts, sums, keys, b, n, nmask, h, hmask, B, N, H, c0, s0, k0)
    put(1, counts, sums, keys, b, n, nmask, h, hmask, B, N, H, c1, s1, k1)
    put(2, counts, sums, keys, b, n, nmask, h, hmask, B, N, H, c2, s2, k2)
    put(3, counts, sums, keys, b, n, nmask, h, hmask, B, N, H, c3, s3, k3)
