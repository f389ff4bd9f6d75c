"""A thread-safe LRU of decoded blocks, bounded in bytes.

Contract: values are immutable ``bytes`` that were verified when they were
loaded, so a hit is served without touching the pack or re-hashing. An entry
larger than a quarter of the bound is returned to the caller but not kept, so
one huge read cannot flush everything else. ``statistics()`` returns a
snapshot object, after trio's style.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, asdict
from typing import Callable, Hashable


@dataclass(frozen=True)
class CacheStatistics:
    hits: int
    misses: int
    evictions: int
    bytes_held: int
    entries: int
    capacity_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


class ByteLRU:
    def __init__(self, capacity_bytes: int):
        self.capacity = max(0, int(capacity_bytes))
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self._misses += 1
                return None
            self._data.move_to_end(key)
            self._hits += 1
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.capacity // 4:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._held -= len(old)
            self._data[key] = value
            self._held += len(value)
            self._evict_to_capacity()

    def set_capacity(self, capacity_bytes: int) -> None:
        """Change the bound; shrinking evicts the least recently used entries at once."""
        with self._lock:
            self.capacity = max(0, int(capacity_bytes))
            self._evict_to_capacity()

    def _evict_to_capacity(self) -> None:
        while self._held > self.capacity and self._data:
            _, evicted = self._data.popitem(last=False)
            self._held -= len(evicted)
            self._evictions += 1

    def get_or_load(self, key: Hashable, load: Callable[[], bytes]) -> bytes:
        value = self.get(key)
        if value is None:
            value = load()
            self.put(key, value)
        return value

    def discard(self, key: Hashable) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._held -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._held = 0

    def statistics(self) -> CacheStatistics:
        with self._lock:
            return CacheStatistics(self._hits, self._misses, self._evictions, self._held,
                                   len(self._data), self.capacity)
