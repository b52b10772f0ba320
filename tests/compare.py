"""Comparing JSON answers: equal, floats to a relative tolerance (float32 rounding)."""

from __future__ import annotations

import math


def same(got, want, rel: float = 1e-4, abs_: float = 1e-6) -> bool:
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(same(got[k], want[k], rel, abs_) for k in want)
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(got, list | tuple)
            and len(got) == len(want)
            and all(same(g, w, rel, abs_) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, float) or isinstance(got, float):
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (got, want))
        return numbers and math.isclose(got, want, rel_tol=rel, abs_tol=abs_)
    return got == want
