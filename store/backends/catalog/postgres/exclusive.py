"""Locks shared by every process of a catalog: PostgreSQL session advisory locks.

``try_exclusive(name)`` takes ``pg_try_advisory_lock`` on a connection of its own, outside the
pool: a session lock lives as long as the connection that took it, so it must neither go back
to a pool nor be shared with transactions. When this process dies, or its connection drops,
the server releases its locks and another mount can take them. Within one process a name is
counted, not locked twice: the server releases it when the last holder here lets go.
"""

from __future__ import annotations

import logging
import threading

import psycopg

log = logging.getLogger("sessionfs.catalog")


class AdvisoryLocks:
    """Named advisory locks on one dedicated connection to ``url`` (opened on first use)."""

    def __init__(self, url: str, where: str):
        self.url = url
        self.where = where
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._held: dict[str, int] = {}

    def try_take(self, name: str) -> bool:
        """True when this process holds ``name`` now; False when another holds it, or the server
        cannot be reached (logged: maintenance waits for its next turn)."""
        with self._lock:
            if self._held.get(name) and self._alive():
                self._held[name] += 1
                return True
            try:
                if self._conn is None or self._conn.closed:
                    self._held.clear()
                    self._conn = psycopg.connect(self.url, autocommit=True, application_name="sessionfs locks")
                took = self._conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                          (name,)).fetchone()[0]
            except psycopg.Error as exc:
                log.warning("catalog %s: cannot take the lock %s (%s); trying again later", self.where, name, exc)
                self._drop()
                return False
            if took:
                self._held[name] = 1
            return took

    def release(self, name: str) -> None:
        with self._lock:
            count = self._held.get(name, 0)
            if count > 1:
                self._held[name] = count - 1
                return
            if not count:
                return
            del self._held[name]
            try:
                self._conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
            except psycopg.Error as exc:
                # The connection is gone, and the server released its locks with it.
                log.warning("catalog %s: releasing the lock %s failed (%s)", self.where, name, exc)
                self._drop()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _alive(self) -> bool:
        """The dedicated connection still holds its session (else its locks went with it)."""
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._held.clear()
