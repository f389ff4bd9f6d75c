"""A bounded pool of PostgreSQL connections: never more than ``size`` open per process.

A caller waiting for a free connection waits (up to ``timeout``), it never opens one more:
many mounts times many threads must not exhaust the server's ``max_connections``. A
connection that failed (``broken``) or was left inside a transaction is closed when given
back, and a new one is opened on demand, so a server restart costs the calls running at
that moment and nothing after.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import psycopg

from store.core.errors import CatalogError


class Pool:
    """Connections to ``url`` in autocommit mode (a transaction is an explicit BEGIN)."""

    def __init__(self, url: str, size: int, *, timeout: float = 60.0, name: str = "catalog"):
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self.url = url
        self.size = size
        self.timeout = timeout
        self.name = name
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._open = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or lent)."""
        with self._lock:
            return self._open

    def connect(self) -> psycopg.Connection:
        """A new connection outside the pool's accounting (the caller holds a slot)."""
        conn = psycopg.connect(self.url, autocommit=True, application_name="sessionfs")
        with self._lock:
            self._open += 1
        return conn

    def discard(self, conn: psycopg.Connection) -> None:
        with self._lock:
            self._open -= 1
        try:
            conn.close()
        except psycopg.Error:
            pass

    def take_slot(self) -> None:
        """Wait for a free slot (``CatalogError`` after ``timeout``)."""
        if self._closed:
            raise CatalogError(f"{self.name}: the catalog is closed")
        if not self._slots.acquire(timeout=self.timeout):
            raise CatalogError(f"{self.name}: no free catalog connection after {self.timeout:.0f} s "
                               f"(all {self.size} are in use)")

    def give_slot(self) -> None:
        self._slots.release()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[psycopg.Connection]:
        """A connection for the block, back to the pool after it (closed if it failed)."""
        self.take_slot()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                try:
                    conn = self.connect()
                except psycopg.Error as exc:
                    raise CatalogError(f"{self.name}: cannot connect to the catalog: {exc}") from exc
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self.give_slot()

    def _give_back(self, conn: psycopg.Connection) -> None:
        healthy = not (conn.closed or conn.broken) and \
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if healthy and not self._closed:
            with self._lock:
                self._idle.append(conn)
        else:
            self.discard(conn)

    def close(self) -> None:
        """Close the idle connections; lent ones close when given back."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self.discard(conn)
