"""Block, chunk and pack ids for this writer, from ranges the catalog reserves.

Every range comes from ``Content.reserve_ids`` in a write transaction of its own, so two
writers sharing a catalog never hand out the same id, and a range outlives the rollback of
the batch that took ids from it. Inside its range a writer takes ids in order. A batch that
fails gives its ids back (``mark``/``restore``): the catalog never saw them, and the next
batch reuses them. Only the persistence worker (and work run in it) takes ids.
"""

from __future__ import annotations

from typing import Callable

KINDS = ("block", "chunk", "pack")
#: Ids reserved at a time: one catalog transaction per this many new blocks, chunks, packs.
RANGE = {"block": 1024, "chunk": 4096, "pack": 16}

Mark = tuple[dict[str, int], dict[str, int]]


class IdRanges:
    """The next free id of each kind; ``reserve(kind, count, floor)`` gets a new range."""

    def __init__(self, reserve: Callable[[str, int, int], int], floors: dict[str, int] | None = None):
        self._reserve = reserve
        self._floor = dict.fromkeys(KINDS, 1) | (floors or {})
        self._next = dict.fromkeys(KINDS, 0)
        self._end = dict.fromkeys(KINDS, 0)

    def peek(self, kind: str) -> int:
        """The id ``take(kind)`` returns next (reserving a range if this one is used up)."""
        if self._next[kind] >= self._end[kind]:
            first = self._reserve(kind, RANGE[kind], self._floor[kind])
            self._next[kind], self._end[kind] = first, first + RANGE[kind]
        return self._next[kind]

    def take(self, kind: str) -> int:
        value = self.peek(kind)
        self._next[kind] = value + 1
        return value

    def skip_past(self, kind: str, used: int) -> None:
        """``used`` is taken (a repair wrote a row with that id): never hand it out."""
        self._floor[kind] = max(self._floor[kind], used + 1)
        if self._next[kind] <= used:
            self._end[kind] = self._next[kind]      # reserve afresh, past ``used``, on next use

    def mark(self) -> Mark:
        return dict(self._next), dict(self._end)

    def taken_since(self, mark: Mark, kind: str) -> list[int]:
        """The ``kind`` ids taken since ``mark`` (without reserving anything)."""
        (old_next, old_end), now = (mark[0][kind], mark[1][kind]), self._next[kind]
        if self._end[kind] == old_end:
            return list(range(old_next, now))
        return [*range(old_next, old_end), *range(self._end[kind] - RANGE[kind], now)]

    def pending(self, kind: str) -> int:
        """The id ``peek`` would give without reserving: where a failed append may have left
        a pack file (``Packer.undo``)."""
        return self._next[kind]

    def restore(self, mark: Mark) -> None:
        """Give back the ids taken since ``mark``, inside ranges still held."""
        for kind in KINDS:
            if self._end[kind] == mark[1][kind]:
                self._next[kind] = mark[0][kind]
