"""The one LRU cache every reader and service here uses: thread-safe, bounded by item count
and, where items say their weight (bytes), by total weight."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Keeps the `capacity` most recently used items, of at most `max_weight` together;
    capacity 0 keeps nothing. An item heavier than max_weight is not kept."""

    def __init__(self, capacity: int, max_weight: int | None = None) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be ≥ 0, got {capacity}")
        self.capacity = capacity
        self.max_weight = max_weight
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, weight: int = 0) -> None:
        if self.capacity == 0 or (self.max_weight is not None and weight > self.max_weight):
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._items[key] = (value, weight)
            self._weight += weight
            while len(self._items) > self.capacity or (
                self.max_weight is not None and self._weight > self.max_weight
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self._weight -= dropped

    def values(self) -> list[V]:
        """What is kept now, least recently used first."""
        with self._lock:
            return [value for value, _ in self._items.values()]

    @property
    def weight(self) -> int:
        """The weight (bytes) of what is kept now."""
        return self._weight

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0

    def drop(self, prefix: object) -> None:
        """Drop the items whose key is a tuple that begins with `prefix`."""
        with self._lock:
            for key in [k for k in self._items if isinstance(k, tuple) and k[:1] == (prefix,)]:
                self._weight -= self._items.pop(key)[1]

    def share(self, prefix: object) -> SharedPart:
        """A part of this cache for one user: its keys under `prefix`, within the budget of
        the whole (one budget for many readers, not one each)."""
        return SharedPart(self, prefix)

    def __len__(self) -> int:
        return len(self._items)


class SharedPart(Generic[K, V]):
    """One user's part of a shared LruCache: get, put and clear its own keys only."""

    def __init__(self, whole: LruCache, prefix: object) -> None:
        self.whole, self.prefix = whole, prefix

    def get(self, key: K) -> V | None:
        return self.whole.get((self.prefix, key))

    def put(self, key: K, value: V, weight: int = 0) -> None:
        self.whole.put((self.prefix, key), value, weight)

    def clear(self) -> None:
        self.whole.drop(self.prefix)
