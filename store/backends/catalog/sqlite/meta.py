"""The ``meta`` domain on SQLite: table ``meta`` and the ``counters`` kept by triggers."""

from __future__ import annotations

import sqlite3

from ..meta import Meta
from . import counters
from .counters import COUNTERS_FORMAT
from .schema import read_format_version
from store.backends.catalog.sqlite.errors import translated


@translated
class SqliteMeta(Meta):
    """``Meta`` over one connection (see ``store.backends.catalog.meta``)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def get(self, key: str) -> int | str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: int | str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def totals(self) -> tuple[dict[str, int], str]:
        if (read_format_version(self._db) or 0) >= COUNTERS_FORMAT:
            return counters.read(self._db), "counters"
        own = not self._db.in_transaction
        if own:
            self._db.execute("BEGIN")
        try:
            return counters.recount(self._db), "scan"
        finally:
            if own:
                self._db.execute("COMMIT")
