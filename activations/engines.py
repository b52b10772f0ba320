"""How collation reduces a layer's activations; light on purpose, so the CLI lists them fast.

"kernel": glu_kernel.c, for float32 GLU models on an AVX-512 CPU (the fastest there);
"compiled": torch.compile, any device; "eager": plain torch ops, the slowest, nothing to build;
"auto": the kernel where it fits, else compiled.
"""

ENGINES: tuple[str, ...] = ("auto", "kernel", "compiled", "eager")


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
