"""Committed inode attributes held in memory, so the mount can answer getattr and open
without a thread hop (about 100 us on this kind of machine) or a query.

The contract:

- An entry is what the catalog held for one inode at some commit: its row (the fields of
  ``InodeRow``, as ``InodeRow.values()``), once asked for, the bytes of its content that are data, not holes
  (for ``st_blocks``), and, once a small file was read whole, where all its chunks lie (so a
  read whose blocks are in the block cache needs no query; block ids are never reused, so a
  location stays right for its block's bytes even after maintenance moved the chunk). Uncommitted writes (overlays) are never in it; the store lays them
  on top, as it does on a row read from SQLite.
- Invalidation is exact: every write transaction of the catalog reports what it changed
  (``Changes``: inode rows, file chunk lists, or everything when a chunk's length changed
  or a chunk went away) to its commit hooks, one of which is ``changed``; it runs when the
  transaction ends, after its commit and before the writer returns (``Catalog.write``,
  ``store.backends.catalog.interface``), drops those entries and advances the epoch. An entry is kept only if no
  such change finished between the start of the read that produced it and the fill (the
  ``fill_*`` methods check the epoch they were given), so a row read from a snapshot older
  than a finished change never outlives that change.
- Reads inside an open read transaction (a snapshot that may predate finished commits)
  never fill it.
- Bounded: at most ``capacity`` entries; the oldest is dropped first. A catalog opened
  read-only uses capacity 0 (nothing cached): another process commits to it unseen.
- ``row`` and ``data_bytes`` never block on I/O: a dict lookup under a lock held for
  microseconds, safe on the event loop. A miss returns None and the caller reads the
  catalog on a worker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from store.backends.catalog.rows import Changes

CAPACITY = 16384      # ~500 bytes an inode (row and data count): 8 MiB when full
LOCATED_CHUNKS = 2    # chunks of the largest file whose locations are kept (~200 bytes each: 6 MiB at most)


@dataclass(slots=True)
class AttrCacheStatistics:
    hits: int
    misses: int
    entries: int
    invalidations: int


class AttrCache:
    def __init__(self, capacity: int = CAPACITY, located_chunks: int = LOCATED_CHUNKS):
        self.capacity = capacity
        self.located_chunks = located_chunks
        self._rows: dict[int, tuple] = {}
        self._data: dict[int, int] = {}
        self._locations: dict[int, tuple] = {}
        self._lock = threading.Lock()
        self._epoch = 0
        self.hits = self.misses = self.invalidations = 0

    @property
    def epoch(self) -> int:
        """Take this before a read whose result may be passed to ``fill``."""
        return self._epoch

    def row(self, ino: int) -> tuple | None:
        with self._lock:
            row = self._rows.get(ino)
        self._count(row is not None)
        return row

    def data_bytes(self, ino: int) -> int | None:
        with self._lock:
            n = self._data.get(ino)
        self._count(n is not None)
        return n

    def locations(self, ino: int) -> tuple | None:
        """Every ``ChunkLocation`` of the file ``ino``, in order (holes have none)."""
        with self._lock:
            return self._locations.get(ino)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def fill_row(self, epoch: int, ino: int, row: tuple) -> None:
        with self._lock:
            if epoch == self._epoch:
                self._put(self._rows, ino, row)

    def fill_data_bytes(self, epoch: int, values: dict[int, int]) -> None:
        with self._lock:
            if epoch == self._epoch:
                for ino, n in values.items():
                    self._put(self._data, ino, n)

    def fill_locations(self, epoch: int, ino: int, locations: tuple) -> None:
        if not locations or len(locations) > self.located_chunks:
            return
        with self._lock:
            if epoch == self._epoch:
                self._put(self._locations, ino, locations)

    def _put(self, table: dict, ino: int, value) -> None:
        if not self.capacity:
            return
        table.pop(ino, None)
        if len(table) >= self.capacity:
            del table[next(iter(table))]
        table[ino] = value

    def changed(self, changes: Changes) -> None:
        """A transaction ended that made these ``changes``: nothing read before may stay."""
        if not changes:
            return
        with self._lock:
            self._epoch += 1
            self.invalidations += 1
            if changes.everything:
                self._rows.clear()
                self._data.clear()
                self._locations.clear()
                return
            for ino in changes.inodes:
                self._rows.pop(ino, None)
            for ino in changes.contents:
                self._data.pop(ino, None)
                self._locations.pop(ino, None)

    def statistics(self) -> AttrCacheStatistics:
        with self._lock:
            return AttrCacheStatistics(self.hits, self.misses, len(self._rows), self.invalidations)
