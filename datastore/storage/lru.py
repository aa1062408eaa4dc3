"""A small thread-safe LRU for immutable things (ranges, snapshot range lists).

What it holds never changes once written, so entries never need invalidating: the only
question is how many to keep.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    def __init__(self, capacity: int, on_evict: Callable[[str], None] | None = None) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, V] = OrderedDict()
        self._on_evict = on_evict
        self.lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self.lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def put(self, key: str, value: V) -> None:
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                if self._on_evict is not None:
                    self._on_evict(old)
