"""Text of indexed files kept for the search index: a cache of extracted rows keyed by
content, and the identity of a file's content it is keyed by."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from store.backends.catalog.rows import ChunkLocation


class TextCache:
    """(content digest, path) -> extracted rows; content-addressed, so never stale."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, rows) -> None:
        size = sum(len(t) for _, t in rows) + 100 * len(rows) + 100      # roughly bytes of Python objects
        if size > self.capacity // 8:
            return
        with self._lock:
            if key in self._data:
                return
            self._data[key] = (rows, size)
            self._held += size
            while self._held > self.capacity and self._data:
                _, (_, old) = self._data.popitem(last=False)
                self._held -= old

    def rows(self, key):
        value = self.get(key)
        return value[0] if value is not None else None


def content_digest(size: int, extents: list[ChunkLocation]) -> bytes:
    """Identity of a file's content: its size, chunk offsets and chunk hashes."""
    h = hashlib.sha256(size.to_bytes(8, "little"))
    for e in extents:
        h.update(e.off.to_bytes(8, "little"))
        h.update(e.hash)
    return h.digest()[:16]
