"""Other writers' commits, heard through ``LISTEN sessionfs_changes`` (``PostgresCatalog.listen``).

One thread per listener holds one connection of the catalog's pool and calls
``fn(changes)`` for each commit another catalog object made (the payload's origin differs
from its own). When the connection fails it reconnects with backoff and calls ``fn(None)``
once it listens again: notifications sent meanwhile are lost, so everything must be
forgotten. ``fn`` runs in the listener's thread; an exception it raises is logged and the
listener goes on.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import psycopg

from ..rows import Changes
from .changes import CHANNEL, decode
from .pool import Pool

log = logging.getLogger(__name__)

#: How often the thread looks at its stop flag while no notification comes (seconds).
POLL = 0.5
RECONNECT_MAX_DELAY = 5.0


class Listener:
    """A thread calling ``fn`` for other writers' commits; ``close()`` stops it."""

    def __init__(self, pool: Pool, origin: str, fn: Callable[[Changes | None], None]):
        self._pool = pool
        self._origin = origin
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-listener", daemon=True)
        #: Set while the connection listens (tests wait for it before committing).
        self.listening = threading.Event()

    def start(self) -> None:
        self._pool.take_slot()
        self._thread.start()

    def _run(self) -> None:
        try:
            lost, delay = False, 0.1
            while not self._stop.is_set():
                try:
                    conn = self._pool.connect()
                except psycopg.Error as exc:
                    log.warning("catalog listener: cannot connect (%s); retrying in %.1f s", exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, RECONNECT_MAX_DELAY)
                    continue
                try:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.1
                    if lost:
                        self._deliver(None)
                    self._listen(conn)
                except psycopg.Error as exc:
                    if not self._stop.is_set():
                        log.warning("catalog listener: connection lost (%s); reconnecting", exc)
                    lost = True
                    self.listening.clear()
                finally:
                    self._pool.discard(conn)
        finally:
            self._pool.give_slot()

    def _listen(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            for note in conn.notifies(timeout=POLL):
                origin, changes = decode(note.payload)
                if origin != self._origin:
                    self._deliver(changes)
                if self._stop.is_set():
                    return

    def _deliver(self, changes: Changes | None) -> None:
        try:
            self._fn(changes)
        except Exception:       # noqa: BLE001 - a failing callback must not stop the listening
            log.exception("catalog listener: the change callback failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
