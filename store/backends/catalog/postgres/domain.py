"""The base of the PostgreSQL domain implementations: SQL on their view's connection."""

from __future__ import annotations

import psycopg

from .changes import Touched


class Domain:
    """Base of the domain implementations: SQL on the view's current connection."""

    def __init__(self, view):
        """``view``: the ``view.PostgresView`` whose connection the calls use."""
        self._view = view

    def _x(self, sql: str, params=()) -> psycopg.Cursor:
        return self._view.conn.execute(sql, params)

    def _many(self, sql: str, rows) -> None:
        rows = list(rows)
        if rows:
            with self._view.conn.cursor() as cur:
                cur.executemany(sql, rows)

    def _one(self, sql: str, params=()):
        return self._x(sql, params).fetchone()

    @property
    def _touched(self) -> Touched:
        return self._view.touched

    def _bulk(self, sql: str, types: tuple[str, ...], rows) -> int:
        """Run ``sql`` once over every row of ``rows``: its ``{rows}`` becomes the rows as a table
        (``unnest`` of one array per column, of the SQL ``types``), so a statement trigger
        fires once, not once per row as with ``executemany``. Returns the rows it changed."""
        rows = list(rows)
        if not rows:
            return 0
        columns = [list(c) for c in zip(*rows)]
        table = "unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"
        return self._x(sql.format(rows=table), columns).rowcount
