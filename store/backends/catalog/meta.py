"""The ``meta`` domain of the catalog: store-wide values and running totals.

Keys the engine uses: ``store_id`` (hex, set at creation), ``created`` (ns),
``format_version`` (the catalog's format), ``sessions_ino`` (the inode of sessions/),
``last_seq`` (the last staged-write sequence committed; ``last_seq/<writer>`` for each writer
of a shared catalog). Other domains keep their own
keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Meta(ABC):
    """Store-wide values through one catalog view."""

    @abstractmethod
    def get(self, key: str) -> int | str | None:
        """The value of ``key``, or None."""

    @abstractmethod
    def put(self, key: str, value: int | str) -> None:
        """Set ``key`` (inside a write transaction)."""

    @abstractmethod
    def totals(self) -> tuple[dict[str, int], str]:
        """(store-wide totals, how they were obtained): counts and byte sums of files,
        sessions, chunks, blocks, packs, recompression, dictionaries and lost files, read in one
        snapshot. "counters" when kept current by every commit (O(1)); "scan" when counted
        now (an older catalog opened read-only)."""
