"""Migration from the legacy monolithic format: import, verify, record, resume, finalize.

What. ``Migrator(store)`` imports legacy session files (``legacy_files.prepare_file``:
read-only, hashed, parsed, checked, split into the chunked layout) into an open,
writable ``Store``:

- ``import_dir(legacy_dir, jobs=, batch=)``: every ``sessions/*.json`` of a legacy
  store, attachments from its ``attachments/``. Resumable, never duplicates.
- ``import_file(path)``: one legacy file (attachments from the sibling
  ``attachments/`` of its ``sessions/`` directory, or ``attachments_dir``).
- ``import_store_file("import/<name>.json")``: a legacy file already inside the
  store tree (dropped into the mount's ``import/``); attachments from
  ``import/attachments/``. On success the dropped file is removed in the same
  commit that marks the session verified; on failure ``<name>.json.error`` says why.
- ``submit(...)`` / ``submit_store_file(...)`` with ``start()``/``stop()``: the same
  in a background thread (the daemon). ``pause()``, ``resume()``, ``cancel()``,
  ``progress()`` (a frozen ``MigrationProgress`` snapshot) work for all of them.

How a session is imported (one legacy file):

1. prepared (in a worker process with ``jobs`` > 1): bytes, SHA-256, parse, checks,
   canonical digest of its values, layout files as bytes;
2. checked against the migration record (``store.backends.catalog.migration``) and the
   tree: already imported -> skipped; the same session from another file or already in
   the store -> failed, never overwritten;
3. its attachments read and hashed (``attachmentId`` -> ``<id>.<ext>``);
4. ONE ``write_files`` group: every layout file, every attachment
   (``sessions/<id>/attachments/<attachment-id>.<ext>``; the store deduplicates), and
   an ``on_commit`` hook that, in the same catalog transaction, refuses the group if
   ``sessions/<id>`` already exists and writes the record (status ``imported``, file
   hash, size, mtime, value digest, attachment hashes). The session and its record
   appear together or not at all, whatever kills the process;
5. once committed, verified: ``SessionStore.load_full_session`` must have the
   recorded value digest and every attachment the recorded SHA-256 (read back
   through the store, which checks each chunk hash). Pass -> status ``verified``
   (a record-only group). Fail -> one group deletes ``sessions/<id>`` and marks the
   record ``failed`` with the reason.

Batches: ``batch`` sessions (or 64 MiB of files) are queued together; while the
persistence worker commits them the next batch is prepared and queued, then the first
is verified (so at most two batches are in flight). The run ends with one durable
flush. No per-batch fsync is needed: a session and its record commit in one SQLite
transaction, so a crash or power loss can only lose whole recent sessions, which the
next run imports again. A rerun skips verified files whose size and mtime equal the
record without reading them, verifies ``imported`` ones from the record (no need
for the legacy file) and retries ``failed`` ones.

Memory: the legacy bytes, one parsed tree and the layout bytes of the files being
prepared, plus the queued groups of one batch (at most ``batch_bytes``, or one
session when it is larger); see ``contrib/bench/import_bench.py`` for measurements.
A session's attachments are held in memory while its group is queued.

Never writes to the legacy directory: files are opened ``O_RDONLY`` (``O_NOATIME``
where allowed); nothing is created, renamed or deleted there, except by
``finalize`` (``migrate-finalize``), which deletes only originals it has re-verified.

Modules: this one holds ``Migrator`` and its public imports; its other parts are
``migrate_pipeline`` (jobs to outcomes), ``migrate_verify`` (record writes and
verification), ``migrate_progress`` (pause/cancel/counters), ``migrate_watch`` (the
daemon's worker and ``import/``), with ``migrate_sources`` (files, attachments, jobs) and
``migrate_report`` (outcomes, progress, reports) beside them.
"""

from __future__ import annotations

import collections
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from store.backends.catalog.migration import AttachmentRecord, Record
from store.core.errors import BadInputError
from store.core.legacy import Limits
from store.engine.store import Store
from .migrate_pipeline import Pipeline
from .migrate_progress import Progress
from .migrate_report import ImportReport, MigrationError, MigrationProgress, Outcome
from .migrate_sources import STORE_SOURCE, DirAttachments, Job
from .migrate_verify import Recording
from .migrate_watch import ImportWatcher
from .sessions import SessionStore

log = logging.getLogger("sessionfs.migrate")

DEFAULT_BATCH = 16
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024


def load_records(view) -> list[Record]:
    """Every migration record of a catalog view ([] when the catalog has none)."""
    return view.migration.records()


class Migrator(Progress, ImportWatcher, Pipeline, Recording):
    """Imports legacy sessions into an open, writable store (see the module docstring).

    Thread-safe: one import runs at a time (a lock); ``pause``/``resume``/``cancel``/
    ``progress`` may be called from any thread.
    """

    def __init__(self, store: Store, *, limits: Limits = Limits(), batch: int = DEFAULT_BATCH,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        if store.readonly:
            raise MigrationError(f"store {store.root} is open read-only; importing needs write access")
        if batch < 1:
            raise BadInputError(f"batch: expected a positive number of sessions, got {batch}")
        self.store = store
        self.sessions = SessionStore(store)
        self.limits = limits
        self.batch = batch
        self.batch_bytes = batch_bytes
        with store.catalog.write() as txn:
            txn.migration.ensure_tables()
        self._run_lock = threading.RLock()
        self._lock = threading.Lock()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._cancel = threading.Event()
        self._reset_counters()
        # background worker
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._running_jobs = 0
        self._entry_listeners: list[Callable[[list[tuple[str, str]]], None]] = []
        self._import_ino: int | None = None
        self._touched: list[tuple[str, str]] = []

    def add_entry_listener(self, fn: Callable[[list[tuple[str, str]]], None]) -> None:
        """``fn([(parent path, name), ...])`` after the migrator's groups committed, naming the
        directory entries they created or removed (``sessions``/<id>, ``import``/<name>.json,
        <name>.json.error), for the mount's kernel dentry invalidation. Called in the importing
        thread; must not raise (it is logged) and should not block."""
        self._entry_listeners.append(fn)

    def _touch(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        self._touched.append((parent, name))

    def _notify(self) -> None:
        touched, self._touched = self._touched, []
        if not touched:
            return
        for fn in self._entry_listeners:
            try:
                fn(list(dict.fromkeys(touched)))
            except Exception:  # noqa: BLE001 - a listener must not break the import
                log.exception("migration entry listener failed")
    # -- public imports ---------------------------------------------------------------
    def import_dir(self, legacy_dir: str | os.PathLike, *, jobs: int = 1, batch: int | None = None,
                   on_outcome: Callable[[Outcome], None] | None = None,
                   on_start: Callable[[int, int], None] | None = None) -> ImportReport:
        """Import every ``sessions/*.json`` of a legacy store (see the module docstring).

        ``on_start(files, bytes)`` is called once the files are listed; ``on_outcome`` after
        each file is done (skips and failures at once, imports once verified). Returns the
        report (outcomes in that order); ``interrupted`` when cancelled.
        """
        root = Path(os.path.abspath(legacy_dir))
        sessions_dir = root / "sessions"
        if not sessions_dir.is_dir():
            raise MigrationError(f"{legacy_dir}: not a legacy store (no sessions/ directory)")
        jobs_list = []
        for entry in sorted(os.scandir(sessions_dir), key=lambda e: e.name):
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            jobs_list.append(Job(entry.path, st.st_size, st.st_mtime_ns, None, path=entry.path))
        attachments = DirAttachments(root / "attachments")
        for job in jobs_list:
            job.attachments = attachments
        report = ImportReport(str(self.store.root), str(root), time.time())
        if on_start is not None:
            on_start(len(jobs_list), sum(j.size for j in jobs_list))
        referenced: set[str] = set()

        def record(outcome: Outcome, ids: Iterable[str] = ()) -> None:
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        with self._run_lock:
            self._cancel.clear()
            self._begin(len(jobs_list), sum(j.size for j in jobs_list))
            with self._lock:
                self._running_jobs += 1
            try:
                report.interrupted = not self._run(jobs_list, jobs=jobs, batch=batch or self.batch,
                                                   emit=record, referenced=referenced)
            finally:
                with self._lock:
                    self._running_jobs -= 1
                self._end()
        if not report.interrupted:
            all_names = {name for names in attachments.index.values() for name in names}
            prefix = str(attachments.directory) + os.sep
            recorded = self.store.catalog.reader().migration.attachment_names_from(prefix)
            report.attachments_not_imported = sorted(all_names - recorded)
        report.finished_at = time.time()
        return report

    def import_file(self, path: str | os.PathLike, *, attachments_dir: str | os.PathLike | None = None,
                    check_name: bool = True) -> Outcome:
        """Import one legacy file now (any thread). Attachments come from ``attachments_dir``,
        by default the ``attachments/`` beside the file's ``sessions/`` directory (or beside it)."""
        job = self._file_job(path, attachments_dir, check_name)
        return self._run_single(job)

    def import_store_file(self, path: str) -> Outcome:
        """Import a legacy file inside the store tree (``import/<name>.json``); see the module docstring."""
        job = self._store_job(path)
        if isinstance(job, Outcome):
            return job
        return self._run_single(job)

    def verify_pending(self) -> list[Outcome]:
        """Verify every record left ``imported`` by an interrupted run (no legacy file needed)."""
        outcomes = []
        with self._run_lock:
            records = [r for r in load_records(self.store.catalog.reader()) if r.status == "imported"]
            pend = []
            for rec in records:
                job = Job(rec.source, rec.size or 0, rec.mtime_ns or 0, None)
                if rec.source.startswith(STORE_SOURCE):
                    job.store_path = rec.source[len(STORE_SOURCE):]
                pend.append(self._pending_from_record(job, rec))
            for p in pend:
                outcomes.append(self._verify_batch([p])[0])
            if pend:
                self.store.flush()
                self._notify()
        return outcomes


__all__ = ["AttachmentRecord", "ImportReport", "MigrationError", "MigrationProgress", "Migrator", "Outcome",
           "Record", "load_records"]
