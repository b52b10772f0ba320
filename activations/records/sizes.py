"""What an object kept in memory costs, in bytes: the weight that every cache of answers is
bounded by (a cache bounded by count alone grew by about 2 MB per distinct record with example
text, 8 GB at 4,096 of them).

An estimate from the standard library's own sizes (sys.getsizeof) of everything reachable: the
lists of tokens and values that make almost all of a record's memory are weighed in one pass of
C code each (judged by their first and last items), so that weighing a 2.5 MB record costs
milliseconds, not a walk of every object. Shared objects (interned tokens, small ints) are
counted each time, and characters as 4 bytes: an estimate from above.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from pydantic import BaseModel

_POINTER = 8
_FLOAT = sys.getsizeof(0.0)
_INT = sys.getsizeof(2**40)
_SCALARS = (bool, int, float, type(None))
_EMPTY_STR = sys.getsizeof("")  # a str's own cost; its characters at most 4 bytes each


def deep_bytes(value: Any) -> int:
    """The bytes `value` and everything it holds take, about (never less than its own size)."""
    size = sys.getsizeof(value)
    if isinstance(value, (str, bytes, bytearray, memoryview, *_SCALARS)):
        return size
    if isinstance(value, (list, tuple)):
        if not value:
            return size
        first, last = value[0], value[-1]
        if type(first) is str and type(last) is str:  # tokens: one pass of C code
            try:
                return size + len(value) * _EMPTY_STR + sum(map(len, value)) * 4
            except TypeError:  # not all strings after all
                pass
        if isinstance(first, _SCALARS) and isinstance(last, _SCALARS):  # values
            return size + len(value) * max(_FLOAT, _INT)
        return size + sum(deep_bytes(v) for v in value)
    if isinstance(value, dict):
        return size + sum(deep_bytes(k) + deep_bytes(v) for k, v in value.items())
    if isinstance(value, BaseModel):
        return size + deep_bytes(value.__dict__) + _POINTER * 4
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return size + deep_bytes(fields)
    return size
