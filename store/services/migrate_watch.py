"""The migrator in the daemon: a background worker fed by the mount's ``import/`` directory
(files closed or renamed there) and by ``submit``."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time

from store.backends.catalog.rows import ROOT_INO
from .migrate_report import MigrationError, Outcome
from .migrate_sources import ERROR_SUFFIX, IMPORT_ATTACHMENTS, IMPORT_DIR

log = logging.getLogger("sessionfs.migrate")


class ImportWatcher:
    """Part of ``Migrator``: the background worker and the ``import/`` directory."""

    def start(self, *, rescan: bool = False) -> None:
        """Start the background worker that processes ``submit``/``submit_store_file``.

        ``rescan``: first (in the worker, so the caller does not wait) verify records an
        interrupted run left ``imported`` and queue the ``import/*.json`` left from before."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            if rescan:
                self._queue.appendleft(("rescan", None, None, False))
            self._thread = threading.Thread(target=self._worker, name="sessionfs-migrate", daemon=True)
            self._thread.start()

    def is_drop(self, parent_ino: int, name: bytes) -> bool:
        """Is ``name`` in directory ``parent_ino`` a legacy file dropped into ``import/``?"""
        if self._import_ino is None:
            self._import_ino = self.store.resolve(IMPORT_DIR)
        return (parent_ino == self._import_ino and name.endswith(b".json") and not name.startswith(b".")
                and len(name) > len(b".json"))

    def file_closed(self, ino: int) -> bool:
        """The mount's ``release`` of a file written through it: queue it if it is ``import/*.json``.
        Cheap (one catalog lookup); returns True when queued."""
        for parent, name in self.store.catalog.names_of(ino):
            if self.is_drop(parent, name):
                self.submit_store_file(f"{IMPORT_DIR}/{name.decode('utf-8', 'surrogateescape')}")
                return True
        return False

    def entry_renamed(self, new_parent_ino: int, new_name: bytes) -> bool:
        """The mount's ``rename`` to ``new_parent/new_name`` (tools write a temporary name, then
        rename): queue it if it is ``import/*.json``; returns True when queued."""
        if self.is_drop(new_parent_ino, new_name):
            self.submit_store_file(f"{IMPORT_DIR}/{new_name.decode('utf-8', 'surrogateescape')}")
            return True
        return False

    def stop(self, timeout: float | None = None) -> None:
        """Cancel what is queued, let the session in progress finish, end the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        self._cancel.set()
        self._unpaused.set()
        if thread is not None:
            thread.join(timeout)
        self._cancel.clear()

    def submit(self, path: str | os.PathLike, *, attachments_dir: str | os.PathLike | None = None,
               check_name: bool = True) -> None:
        """Queue an OS file for the background worker (``start`` it first)."""
        self._enqueue(("file", os.fspath(path), attachments_dir, check_name))

    def submit_store_file(self, path: str) -> None:
        """Queue a legacy file inside the store tree (``import/<name>.json``) for the worker."""
        self._enqueue(("store", path, None, False))

    def rescan_import_dir(self) -> int:
        """Queue every ``import/*.json`` without an ``.error`` file, after verifying records left
        ``imported`` (call at mount start). Returns how many files were queued."""
        self.verify_pending()
        self.store.settle()
        ino = self.store.resolve(IMPORT_DIR)
        if ino is None:
            return 0
        names = {n.decode("utf-8", "surrogateescape") for n, row in self.store.iter_dir(ino)
                 if stat.S_ISREG(row.mode)}
        with self._lock:
            already = {item[1] for item in self._queue if item[0] == "store"}
        queued = 0
        for name in sorted(names):
            path = f"{IMPORT_DIR}/{name}"
            if (name.endswith(".json") and not name.startswith(".") and name + ERROR_SUFFIX not in names
                    and path not in already):
                self.submit_store_file(path)
                queued += 1
        return queued

    def ensure_import_dir(self, mode: int = 0o755) -> int:
        """Create the store-tree directory ``import/`` (and ``import/attachments/``) if missing;
        returns the inode of ``import/``."""
        ino = self.store.resolve(IMPORT_DIR)
        if ino is None:
            ino = self.store.make_node(ROOT_INO, IMPORT_DIR.encode(), stat.S_IFDIR | mode,
                                       self.store.owner_uid, self.store.owner_gid).id
        if self.store.resolve(IMPORT_ATTACHMENTS) is None:
            self.store.make_node(ino, b"attachments", stat.S_IFDIR | mode, self.store.owner_uid,
                                 self.store.owner_gid)
        self._import_ino = ino
        return ino

    def _enqueue(self, item: tuple) -> None:
        with self._lock:
            if self._stopping:
                raise MigrationError("the migrator is stopping")
            self._queue.append(item)
            if self._state == "idle":
                self._reset_counters()
                self._state = "running"
                self._started_at = time.time()
                self._started_mono = time.monotonic()
            self._sessions_total += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the background queue is empty and nothing runs; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._queue and self._running_jobs == 0:
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                kind, path, attachments_dir, check_name = self._queue.popleft()
                self._running_jobs += 1
            try:
                if kind == "rescan":
                    self.rescan_import_dir()
                    continue
                if not self._checkpoint():
                    continue
                if kind == "store":
                    job = self._store_job(path)
                else:
                    job = self._file_job(path, attachments_dir, check_name)
                if isinstance(job, Outcome):
                    self._count(job)
                else:
                    with self._lock:
                        self._bytes_total += job.size
                    self._run_single(job, counted=True)
            except Exception:  # noqa: BLE001 - the worker must survive any one file
                log.exception("background import of %s failed", path)
                with self._lock:
                    self._sessions_done += 1
                    self._failed += 1
                    self._recent.append((path, "internal error; see the log"))
            finally:
                with self._lock:
                    self._running_jobs -= 1
                self._end()
