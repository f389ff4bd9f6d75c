"""The ``meta`` domain on PostgreSQL: table ``meta`` (JSON values) and the summed ``counters``."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from ..meta import Meta
from . import counters
from .domain import Domain
from .errors import translated


@translated
class PostgresMeta(Domain, Meta):
    """``Meta`` over one view (see ``store.backends.catalog.meta``)."""

    def get(self, key: str) -> int | str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return row[0] if row else None

    def put(self, key: str, value: int | str) -> None:
        self._x("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, Jsonb(value)))

    def totals(self) -> tuple[dict[str, int], str]:
        return counters.read(self._view.conn), "counters"
