"""This mount's place among the mounts sharing its catalog, and the deletion of unlinked inodes.

A file keeps living after its last name goes while someone holds it (the kernel's lookup
count: ``Store.pin``). One mount knows only its own holders, so on a shared catalog the
mounts register and send heartbeats (``store.backends.catalog.mounts`` says how leases and
expiry work), and an unlinked inode is deleted only when no live mount may hold it:

- at once, when no other mount is live (always, with one writer: the SQLite default);
- else by a sweep, which every heartbeat runs: once each other live mount has scanned
  since the sweep first saw the inode unlinked, and none of them holds it;
- a mount that stops beating for longer than its expiry (``SESSIONFS_MOUNT_EXPIRY``
  seconds, 30 by default) is dead: the next sweep of any mount drops it and its leases,
  and deletes what it alone held. A restarted mount's recovery sweeps the same way.

The heartbeat runs in a thread of its own, never on the mount's event loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Iterable

from store.backends.catalog.interface import Catalog, CatalogView
from store.core.errors import FormatError, StoreError

log = logging.getLogger("sessionfs.store")

DEFAULT_EXPIRY_S = 30.0
EXPIRY_VARIABLE = "SESSIONFS_MOUNT_EXPIRY"
#: Heartbeats per expiry period: a mount misses this many before the others drop it.
BEATS_PER_EXPIRY = 4


def mount_expiry() -> float:
    """Seconds without a heartbeat after which a mount is dead (``SESSIONFS_MOUNT_EXPIRY``)."""
    text = os.environ.get(EXPIRY_VARIABLE)
    if text is None:
        return DEFAULT_EXPIRY_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.5 <= value <= 86400:
        raise FormatError(f"{EXPIRY_VARIABLE}={text!r} is not a number of seconds between 0.5 and 86400")
    return value


class Liveness:
    """Registration, heartbeats and sweeps of one writable store (see the module docstring).
    ``held(ino)``: this process holds ``ino`` now; ``pinned()``: every inode it holds."""

    def __init__(self, catalog: Catalog, writer: str, held: Callable[[int], bool],
                 pinned: Callable[[], Iterable[int]], expiry_s: float):
        self.catalog = catalog
        self.writer = writer
        self.expiry_s = expiry_s
        self._held = held
        self._pinned = pinned
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- deleting unlinked inodes (inside the caller's write transaction) ---------------
    def delete_unheld(self, view: CatalogView, inos: Iterable[int] | None, now: int) -> list[int]:
        """Delete those of ``inos`` (None: every unlinked inode, noting new ones: see
        ``Mounts.deletable``) that have no name and that no mount holds; their numbers."""
        deleted = [ino for ino in view.mounts.deletable(self.writer, inos) if not self._held(ino)]
        return [ino for ino in deleted if view.tree.delete_if_unlinked(ino, now)]

    def sweep(self, view: CatalogView) -> list[int]:
        """Drop the mounts that expired, then delete the unlinked inodes nobody holds any more."""
        gone = view.mounts.expire(self.writer)
        if gone:
            log.warning("mounts %s sent no heartbeat for their expiry period: their holds on unlinked files "
                        "are dropped", ", ".join(gone))
        return self.delete_unheld(view, None, time.time_ns())

    # -- the register ---------------------------------------------------------------------
    def start(self) -> None:
        """Register this mount and start its heartbeat."""
        now = self.catalog.reader().mounts.clock()
        self.catalog.transact(lambda view: view.mounts.register(self.writer, self.expiry_s, now))
        self._thread = threading.Thread(target=self._run, name="sessionfs-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and deregister (this mount holds nothing any more)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            self.catalog.transact(lambda view: view.mounts.deregister(self.writer))
        except StoreError as exc:
            log.warning("could not deregister this mount (%s): the others drop it after %g s", exc, self.expiry_s)

    def beat(self) -> None:
        """A heartbeat: the leases of this mount become the unlinked inodes it holds now."""
        scanned = self.catalog.reader().mounts.clock()

        def record(view: CatalogView) -> bool:
            pinned = set(self._pinned())
            held = [ino for ino in view.tree.unlinked_inodes() if ino in pinned]
            return view.mounts.beat(self.writer, self.expiry_s, scanned, held)

        if not self.catalog.transact(record):
            log.warning("this mount had been taken for dead (no heartbeat for %g s): files open here whose "
                        "last name went on another mount may have been deleted", self.expiry_s)

    def _run(self) -> None:
        interval = self.expiry_s / BEATS_PER_EXPIRY
        while not self._stop.wait(interval):
            try:
                self.beat()
                self.catalog.transact(self.sweep)
            except StoreError as exc:
                log.warning("heartbeat failed (%s); trying again in %g s", exc, interval)
