"""The Triton kernel of triton_engine.py, at module level (Triton's interpreter, which the tests
run it under, reads a kernel's helpers from its module). Imported only where Triton is used;
whether it is interpreted (TRITON_INTERPRET=1) is fixed when this module is imported."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def key_of(v, pos):
    bits = v.to(tl.int32, bitcast=True).to(tl.int64)
    return ((bits & 0x7FFFFFFF) << 32) | ((bits < 0).to(tl.int64) << 31) | (2147483647 - pos)


@triton.jit
def fold(q, g, u, a, p, pos, c, s0, s1, s2, s3, k0, k1, k2, k3):
    c += tl.sum(q.to(tl.int32), axis=0)
    s0 += tl.sum(tl.where(q, g, 0.0), axis=0)
    s1 += tl.sum(tl.where(q, u, 0.0), axis=0)
    s2 += tl.sum(tl.where(q, a, 0.0), axis=0)
    s3 += tl.sum(tl.where(q, p, 0.0), axis=0)
    k0 = tl.maximum(k0, tl.max(tl.where(q, key_of(g, pos), -1), axis=0))
    k1 = tl.maximum(k1, tl.max(tl.where(q, key_of(u, pos), -1), axis=0))
    k2 = tl.maximum(k2, tl.max(tl.where(q, key_of(a, pos), -1), axis=0))
    k3 = tl.maximum(k3, tl.max(tl.where(q, key_of(p, pos), -1), axis=0))
    return c, s0, s1, s2, s3, k0, k1, k2, k3


@triton.jit
def put(q, counts, sums, keys, b, n, nmask, B, N, c, s0, s1, s2, s3, k0, k1, k2, k3):
    tl.store(counts + (q * B + b) * N + n, c, mask=nmask)
    tl.store(sums + ((q * 4 + 0) * B + b) * N + n, s0, mask=nmask)
    tl.store(sums + ((q * 4 + 1) * B + b) * N + n, s1, mask=nmask)
    tl.store(sums + ((q * 4 + 2) * B + b) * N + n, s2, mask=nmask)
    tl.store(sums + ((q * 4 + 3) * B + b) * N + n, s3, mask=nmask)
    tl.store(keys + ((q * 4 + 0) * B + b) * N + n, k0, mask=nmask)
    tl.store(keys + ((q * 4 + 1) * B + b) * N + n, k1, mask=nmask)
    tl.store(keys + ((q * 4 + 2) * B + b) * N + n, k2, mask=nmask)
    tl.store(keys + ((q * 4 + 3) * B + b) * N + n, k3, mask=nmask)


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
def stats(gate, in_, act, post, valid, sign, counts, sums, keys, hist, B, T, N,
          HAS_POST: tl.constexpr, HAS_SIGN: tl.constexpr, HAS_HIST: tl.constexpr,
          BINS: tl.constexpr, ZERO: tl.constexpr, STEPS: tl.constexpr, BASE: tl.constexpr,
          NONE: tl.constexpr,
          BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    b = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    if HAS_SIGN:
        flip = tl.load(sign + n, mask=nmask, other=1.0)
    else:
        flip = tl.full((BLOCK_N,), 1.0, tl.float32)
    zi = tl.zeros((BLOCK_N,), tl.int32)
    zf = tl.zeros((BLOCK_N,), tl.float32)
    zk = tl.full((BLOCK_N,), -1, tl.int64)
    c0, c1, c2, c3 = zi, zi, zi, zi
    s00, s01, s02, s03, s10, s11, s12, s13 = zf, zf, zf, zf, zf, zf, zf, zf
    s20, s21, s22, s23, s30, s31, s32, s33 = zf, zf, zf, zf, zf, zf, zf, zf
    k00, k01, k02, k03, k10, k11, k12, k13 = zk, zk, zk, zk, zk, zk, zk, zk
    k20, k21, k22, k23, k30, k31, k32, k33 = zk, zk, zk, zk, zk, zk, zk, zk
    for t0 in range(0, T, BLOCK_T):
        t = t0 + tl.arange(0, BLOCK_T)
        ok = tl.load(valid + b * T + t, mask=t < T, other=0) != 0
        m = ok[:, None] & nmask[None, :]
        at = (b * T + t[:, None]).to(tl.int64) * N + n[None, :]
        g = tl.load(gate + at, mask=m, other=0.0).to(tl.float32)
        u = tl.load(in_ + at, mask=m, other=0.0).to(tl.float32) * flip[None, :]
        a = tl.load(act + at, mask=m, other=0.0).to(tl.float32)
        if HAS_POST:
            p = tl.load(post + at, mask=m, other=0.0).to(tl.float32) * flip[None, :]
        else:
            p = a * u
        pos = t[:, None].to(tl.int64) + tl.zeros((BLOCK_T, BLOCK_N), tl.int64)
        gp, gn, up, un = (g > 0) & m, (g < 0) & m, u > 0, u < 0
        if HAS_HIST:  # one count per real token: group (quadrant, 4: none), bin, neuron
            group = tl.where(gp & up, 0, tl.where(gp & un, 1, tl.where(gn & up, 2, NONE)))
            group = tl.where(gn & un, 3, group)
            cell = group * BINS + histogram_bin(p, ZERO, STEPS, BASE)
            ones = tl.full((BLOCK_T, BLOCK_N), 1, tl.int32)
            tl.atomic_add(hist + cell.to(tl.int64) * N + n[None, :], ones, mask=m)
        c0, s00, s01, s02, s03, k00, k01, k02, k03 = fold(
            gp & up, g, u, a, p, pos, c0, s00, s01, s02, s03, k00, k01, k02, k03
        )
        c1, s10, s11, s12, s13, k10, k11, k12, k13 = fold(
            gp & un, g, u, a, p, pos, c1, s10, s11, s12, s13, k10, k11, k12, k13
        )
        c2, s20, s21, s22, s23, k20, k21, k22, k23 = fold(
            gn & up, g, u, a, p, pos, c2, s20, s21, s22, s23, k20, k21, k22, k23
        )
        c3, s30, s31, s32, s33, k30, k31, k32, k33 = fold(
            gn & un, g, u, a, p, pos, c3, s30, s31, s32, s33, k30, k31, k32, k33
        )
    put(0, counts, sums, keys, b, n, nmask, B, N, c0, s00, s01, s02, s03, k00, k01, k02, k03)
    put(1, counts, sums, keys, b, n, nmask, B, N, c1, s10, s11, s12, s13, k10, k11, k12, k13)
    put(2, counts, sums, keys, b, n, nmask, B, N, c2, s20, s21, s22, s23, k20, k21, k22, k23)
    put(3, counts, sums, keys, b, n, nmask, B, N, c3, s30, s31, s32, s33, k30, k31, k32, k33)
