"""Committed directory entries held in memory, so the mount answers a lookup (a name, or the
absence of one) without a thread hop or a query.

The contract, that of the attribute cache (``attr_cache``) for names:

- A cached directory is what the catalog listed for it at some commit: name -> inode for
  every name in it, so a name it does not hold does not exist there (a negative entry).
  It is filled a whole directory at a time (``fill_dir``, one catalog call), and only for
  directories of at most ``largest`` names; lookups in larger ones go to the catalog, and
  such a directory is remembered (``too_large``, up to ``LARGE_KEPT`` of them, until
  everything is dropped) so that it is not listed again at every miss.
- Invalidation is exact: every write transaction reports the names it created or removed
  (``Changes.entries``); ``changed`` (a commit hook, and the listener of other mounts'
  commits on a shared catalog) marks each such name unknown in its directory, so the next
  lookup of it reads the catalog (``fill_name``). ``Changes.everything`` drops all. A
  directory with more than ``MAX_UNKNOWN`` unknown names is dropped whole (read again at its
  next miss), which bounds both the memory and the lookups that go to the catalog.
- A fill is kept only if no change of names finished between the start of its read and the
  fill (the epoch, advanced only by changes of names: writes of file content leave it).
- Bounded: at most ``capacity`` names in all; the least recently used directory goes first.
  Capacity 0 (a catalog opened read-only: others commit unseen) caches nothing.
- ``entry`` never blocks on I/O (a dict lookup under a lock held for microseconds), safe on
  the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from store.backends.catalog.rows import Changes

CAPACITY = 32768     # names in all: ~150 bytes each, about 5 MiB when full
LARGEST = 4096       # names of the largest directory kept
MAX_UNKNOWN = 64     # names of a cached directory changed since it was listed, before it is dropped
ABSENT = 0           # ``entry``: the name does not exist (no inode is 0)
LARGE_KEPT = 1024    # directories remembered as too large to cache


@dataclass(slots=True)
class _Directory:
    names: dict[bytes, int]
    unknown: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class DirCacheStatistics:
    hits: int
    misses: int
    directories: int
    names: int


class DirCache:
    def __init__(self, capacity: int = CAPACITY, largest: int = LARGEST):
        self.capacity = capacity
        self.largest = largest
        self._dirs: dict[int, _Directory] = {}
        self._names = 0
        self._large: dict[int, None] = {}
        self._lock = threading.Lock()
        self._epoch = 0
        self.hits = self.misses = 0

    @property
    def epoch(self) -> int:
        """Take this before a read whose result may be passed to a ``fill_*`` method."""
        return self._epoch

    def entry(self, parent: int, name: bytes) -> int | None:
        """The inode ``name`` in ``parent`` names, ``ABSENT`` if none, None if not known here."""
        with self._lock:
            d = self._dirs.get(parent)
            if d is None or name in d.unknown:
                self.misses += 1
                return None
            self._dirs[parent] = self._dirs.pop(parent)     # most recently used last
            self.hits += 1
            return d.names.get(name, ABSENT)

    def listed(self, parent: int) -> bool:
        """Whether ``parent`` is cached (a miss in it is one name to read, not the directory)."""
        with self._lock:
            return parent in self._dirs

    def too_large(self, parent: int) -> bool:
        """Whether ``parent`` was found too large to cache (lookups in it read single names)."""
        with self._lock:
            return parent in self._large

    def fill_dir(self, epoch: int, parent: int, names: dict[bytes, int]) -> None:
        """``names``: all of ``parent`` as read at ``epoch`` (or its first ``largest + 1``)."""
        if not self.capacity:
            return
        with self._lock:
            if len(names) > min(self.largest, self.capacity):
                self._large.pop(parent, None)
                self._large[parent] = None
                if len(self._large) > LARGE_KEPT:
                    del self._large[next(iter(self._large))]
                return
            if epoch != self._epoch:
                return
            self._drop(parent)
            while self._dirs and self._names + len(names) > self.capacity:
                self._drop(next(iter(self._dirs)))
            self._dirs[parent] = _Directory(names)
            self._names += len(names)

    def fill_name(self, epoch: int, parent: int, name: bytes, ino: int) -> None:
        """``name`` in ``parent`` read at ``epoch`` (``ino``: ``ABSENT`` if missing)."""
        with self._lock:
            d = self._dirs.get(parent)
            if epoch != self._epoch or d is None or name not in d.unknown:
                return
            d.unknown.discard(name)
            if ino != ABSENT:
                d.names[name] = ino
                self._names += 1

    def _drop(self, parent: int) -> None:
        d = self._dirs.pop(parent, None)
        if d is not None:
            self._names -= len(d.names)

    def changed(self, changes: Changes) -> None:
        """A transaction ended that made these ``changes``: names it touched are unknown now."""
        if not (changes.entries or changes.everything):
            return
        with self._lock:
            self._epoch += 1
            if changes.everything:
                self._dirs.clear()
                self._large.clear()
                self._names = 0
                return
            for parent, name in changes.entries:
                d = self._dirs.get(parent)
                if d is None:
                    continue
                if d.names.pop(name, None) is not None:
                    self._names -= 1
                d.unknown.add(name)
                if len(d.unknown) > MAX_UNKNOWN:
                    self._drop(parent)

    def statistics(self) -> DirCacheStatistics:
        with self._lock:
            return DirCacheStatistics(self.hits, self.misses, len(self._dirs), self._names)
