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
from itertools import chain
from operator import attrgetter
from typing import Any

from pydantic import BaseModel

_POINTER = 8
_FLOAT = sys.getsizeof(0.0)
_INT = sys.getsizeof(2**40)
_SCALARS = (bool, int, float, type(None))
_EMPTY_STR = sys.getsizeof("")  # a str's own cost; its characters at most 4 bytes each
# exactly these types weigh their own size: checked first, by type, as most of what a record
# holds is one of them (its examples' numbers, its field names)
_LEAVES = frozenset({*_SCALARS, str, bytes})
_NUMBERS = frozenset(_SCALARS)


def deep_bytes(value: Any) -> int:
    """The bytes `value` and everything it holds take, about (never less than its own size)."""
    if type(value) in _LEAVES:
        return sys.getsizeof(value)
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
        if isinstance(first, BaseModel):
            flat = _flat_models_bytes(value)
            if flat is not None:
                return size + flat
        return size + sum(map(deep_bytes, value))
    if isinstance(value, dict):
        return size + _items_bytes(value)
    if isinstance(value, BaseModel):
        return size + sys.getsizeof(value.__dict__) + _items_bytes(value.__dict__) + _POINTER * 4
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return size + deep_bytes(fields)
    return size


_FIELDS = attrgetter("__dict__")


def _flat_models_bytes(models: list | tuple) -> int | None:
    """About what deep_bytes gives for each of these models, where all are of one class and
    hold numbers and None only (a record's examples without text), in passes of C code with
    no call per model: a model holds every field of its class, by the same names, so the names
    are weighed once; each number as the largest of its kind, as in a list of values. None
    where that does not hold."""
    first = models[0]
    if len(set(map(type, models))) != 1:
        return None
    fields = list(map(_FIELDS, models))
    if not _NUMBERS.issuperset(map(type, chain.from_iterable(map(dict.values, fields)))):
        return None
    per_model = sys.getsizeof(first) + _POINTER * 4 + sum(map(sys.getsizeof, fields[0]))
    per_model += len(fields[0]) * max(_FLOAT, _INT)
    return len(models) * per_model + sum(map(sys.getsizeof, fields))


def _items_bytes(mapping: dict) -> int:
    """A dict's keys and values: where all are leaves (field names, numbers), weighed in C in
    one pass; else each is walked."""
    total = 0
    for items in (mapping.keys(), mapping.values()):
        weigh = sys.getsizeof if _LEAVES.issuperset(map(type, items)) else deep_bytes
        total += sum(map(weigh, items))
    return total
