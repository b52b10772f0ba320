"""The kernel built for other CPUs gives the same bytes (totals, lists and value histograms):
glu_kernel_driver.c runs it over the same batches built natively, for plain x86-64 (SSE2) and
x86-64-v2 (SSE4.1's blends), for AVX2 where this CPU runs it, and for aarch64 (NEON, under qemu)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from activations.collate.kernel import SOURCE
from activations.collate.kernel_header import product_hook
from activations.records.schema import GLU_LAYOUT

DRIVER = Path(__file__).with_name("glu_kernel_driver.c")
FLAGS = ["-O3", "-fopenmp", "-std=c11", f"-I{SOURCE.parent}"]
X86 = platform.machine() in ("x86_64", "AMD64")
CROSS, QEMU = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
AVX2 = (
    X86 and " avx2" in Path("/proc/cpuinfo").read_text()
    if Path("/proc/cpuinfo").exists()
    else False
)


def batches(path: Path, b: int, t: int, n: int, k: int, count: int, product: bool) -> None:
    """`count` batches on a coarse grid (ties), with zeros, padding and sign flips."""
    generator = torch.Generator().manual_seed(n)
    hooks = GLU_LAYOUT.hooks
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    parts = [torch.tensor([b, t, n, k, count, int(product) | 2]).numpy().tobytes()]
    parts.append(sign.numpy().tobytes())
    for i in range(count):
        # over many powers of two (the histogram's bins), on a coarse grid of each (ties)
        scale = 2.0 ** torch.randint(-18, 10, (b, t, n), generator=generator)
        gate = torch.randn(b, t, n, generator=generator).round(decimals=1) * scale
        linear = torch.randn(b, t, n, generator=generator).round(decimals=1)
        gate[:, :, 0], linear[:, :, 1] = 0.0, 0.0
        swish = torch.nn.functional.silu(gate)
        values = dict(zip(hooks, [gate, linear, swish, swish * linear], strict=True))
        for hook in hooks:
            if not (product and hook == product_hook()):
                parts.append(values[hook].contiguous().numpy().tobytes())
        valid = torch.ones(b, t, dtype=torch.uint8)
        valid[-1, t // 2 + 1 :] = 0
        parts.append(valid.numpy().tobytes())
        parts.append(torch.arange(i * b, (i + 1) * b).numpy().tobytes())
    path.write_bytes(b"".join(parts))


def run(command: list[str], tmp: Path, name: str, data: Path) -> tuple[str, bytes]:
    out = tmp / f"{name}.out"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([*command, str(data), str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), out.read_bytes()


def build(compiler: str, flags: list[str], out: Path) -> None:
    done = subprocess.run(
        [compiler, *FLAGS, *flags, str(DRIVER), "-o", str(out), "-lm"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
@pytest.mark.parametrize("product", [False, True])
def test_every_cpu_build_gives_the_same_bytes(tmp_path, product):
    data = tmp_path / "batches.bin"
    batches(data, b=3, t=21, n=45, k=16, count=12, product=product)  # 45: a last partial vector
    build("gcc", ["-march=native"], tmp_path / "native")
    isa, expected = run([str(tmp_path / "native")], tmp_path, "native", data)
    others = {}
    if X86:
        build("gcc", ["-march=x86-64"], tmp_path / "sse2")
        others["x86-64"] = [str(tmp_path / "sse2")]
        # SSE4.1: the selects as blend instructions (glu_vectors.h), every x86-64 CPU since 2008
        build("gcc", ["-march=x86-64-v2"], tmp_path / "sse4")
        others["x86-64-v2"] = [str(tmp_path / "sse4")]
    if AVX2:  # gcc's vector extensions as two 256-bit halves, run here
        build("gcc", ["-march=x86-64-v3"], tmp_path / "avx2")
        others["x86-64-v3"] = [str(tmp_path / "avx2")]
    if CROSS and QEMU:
        build(CROSS, ["-march=armv8-a", "-static"], tmp_path / "arm")
        others["aarch64"] = [QEMU, str(tmp_path / "arm")]
    for name, command in others.items():
        other_isa, got = run(command, tmp_path, name, data)
        assert got == expected, f"{name} ({other_isa}) differs from the native build ({isa})"
    if not (CROSS and QEMU):
        pytest.skip("aarch64 not checked: needs aarch64-linux-gnu-gcc and qemu-aarch64")
