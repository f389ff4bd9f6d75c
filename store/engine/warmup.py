"""Keeping metadata hot: after a mount, load what an app lists sessions by into memory.

An app's session list reads ``sessions/<id>/metadata.json`` of every session. On a fresh
mount each of those costs a catalog query for the session's names, one for the file's chunk
locations, and a block read and decode. ``Warmup`` does that work ahead, in a background
thread niced to 19 and using at most ``cpu_share`` of a core, pausing while foreground I/O
is under way (as the background compressor does): the most recently changed sessions first,
their directory entries into the directory cache and the decoded blocks and locations of
their ``metadata.json`` into the block and attribute caches, so the mount answers the
lookups and reads from memory (``fusefs.ops``: no thread hop).

Bounded: at most ``MAX_SESSIONS`` sessions, ``metadata.json`` files up to ``MAX_FILE``
bytes, and decoded bytes up to a quarter of the block cache (the rest stays for reads).
It warms once; what the caches later drop comes back on the next read.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from store.core.layout import METADATA_FILE
from .idle import wait_until_quiet
from .readpath import READ_WINDOW

log = logging.getLogger("sessionfs.warmup")

METADATA = METADATA_FILE.encode()
MAX_SESSIONS = 4096
MAX_FILE = READ_WINDOW
QUIET = 0.2          # seconds without foreground I/O before a step
CPU_SHARE = 0.5      # of one core, at most


class Warmup:
    def __init__(self, store, *, quiet: float = QUIET, cpu_share: float = CPU_SHARE,
                 max_sessions: int = MAX_SESSIONS):
        self.store = store
        self.quiet = quiet
        self.cpu_share = cpu_share
        self.max_sessions = max_sessions
        self.state = "starting"
        self.sessions = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sessionfs-warmup", daemon=True)

    def start(self) -> "Warmup":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def statistics(self) -> dict:
        return {"state": self.state, "sessions": self.sessions, "bytes": self.bytes}

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass
        try:
            self._warm()
            self.state = "stopped" if self._stop.is_set() else "done"
        except Exception as exc:  # noqa: BLE001 - warming is an optimization: never fatal
            log.warning("warming the metadata of sessions stopped: %s", exc)
            self.state = f"failed: {type(exc).__name__}"

    def _warm(self) -> None:
        store = self.store
        budget = store.cache.capacity // 4
        for ino in self._recent_sessions():
            if self.sessions >= self.max_sessions or self.bytes >= budget or not self._wait_quiet():
                return
            self.state = "working"
            t0 = time.monotonic()
            self.bytes += self._warm_session(ino)
            self.sessions += 1
            self._stop.wait((time.monotonic() - t0) * (1 / self.cpu_share - 1))

    def _recent_sessions(self) -> list[int]:
        """The session directories, most recently changed first (``sessions/`` itself listed
        into the directory cache)."""
        store, rows, after = self.store, [], 0
        store.list_directory(store.sessions_ino)
        while not self._stop.is_set():
            page = store.catalog.readdir(store.sessions_ino, after, 1024)
            if not page:
                break
            rows.extend(row for _, _, row in page)
            after = page[-1][0]
        rows.sort(key=lambda row: row.mtime_ns, reverse=True)
        return [row.id for row in rows]

    def _warm_session(self, ino: int) -> int:
        """List one session directory and load its metadata.json; the decoded bytes read."""
        store = self.store
        names = store.list_directory(ino)
        meta = names.get(METADATA) if names is not None else store.catalog.lookup(ino, METADATA)
        if meta is None or store.has_pending(meta):
            return 0
        epoch = store.attrs.epoch
        row = store.committed_inode(meta)
        if row is None or not 0 < row.size <= MAX_FILE:
            return 0
        store.read_committed(meta, 0, row.size, located=epoch)
        return row.size

    def _wait_quiet(self) -> bool:
        """Wait until foreground I/O has been quiet for ``quiet`` seconds; False when stopping."""
        return wait_until_quiet(self.store, self._stop, self.quiet, self._paused)

    def _paused(self) -> None:
        self.state = "paused"
