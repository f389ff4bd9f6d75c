"""The ``mounts`` domain on SQLite: one process writes the catalog (the store's lock file),
so there are no other mounts: nothing is recorded and every unlinked inode is deletable."""

from __future__ import annotations

import sqlite3
import time
from typing import Iterable

from ..mounts import Mounts
from ..rows import ROOT_INO
from .errors import translated


@translated
class SqliteMounts(Mounts):
    """``Mounts`` (see ``store.backends.catalog.mounts``) of a catalog with one writer."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def clock(self) -> int:
        return time.time_ns()

    def register(self, writer: str, expiry_s: float, now: int) -> None:
        pass

    def deregister(self, writer: str) -> None:
        pass

    def beat(self, writer: str, expiry_s: float, scanned: int, held: Iterable[int]) -> bool:
        return True

    def expire(self, writer: str) -> list[str]:
        return []

    def deletable(self, writer: str, inos: Iterable[int] | None) -> list[int]:
        if inos is None:
            return [r[0] for r in self._db.execute("SELECT id FROM inodes WHERE nlink = 0 AND id <> ?", (ROOT_INO,))]
        return list(inos)
