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
2. checked against the migration record (``migrations`` table, see
   ``schema.create_tables``) and the tree: already imported -> skipped; the same
   session from another file or already in the store -> failed, never overwritten;
3. its attachments read and hashed (``attachmentId`` -> ``<id>.<ext>``);
4. ONE ``write_files`` group: every layout file, every attachment
   (``sessions/<id>/attachments/<attachment-id>.<ext>``; the store deduplicates), and
   an ``on_commit`` hook that, in the same SQLite transaction, refuses the group if
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
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from store.core import legacy
from store.services import legacy_files
from store.engine.store import Store
from store.core.errors import BadInputError, StoreError
from store.core.legacy import LegacyError, Limits, Prepared
from store.engine.persist import PathGroup
from store.backends.catalog.rows import ROOT_INO
from store.backends.catalog.sqlite.schema import ensure_migration_tables, has_migration_tables
from .sessions import ATTACHMENTS_DIR, SESSIONS_DIR, SessionStore

log = logging.getLogger("sessionfs.migrate")

STORE_SOURCE = "store:"            # prefix of the record source of files inside the store tree
IMPORT_DIR = "import"              # the mount's drop directory (a real directory of the store tree)
IMPORT_ATTACHMENTS = f"{IMPORT_DIR}/attachments"
ERROR_SUFFIX = ".error"
DEFAULT_BATCH = 16
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
RECENT_FAILURES = 20
ACTIVE = ("imported", "verified", "finalized")

_RECORD_COLUMNS = ("id, source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
                   "imported_at, verified_at, finalized_at, updated_at")


class MigrationError(StoreError):
    """A migration cannot run at all (no legacy directory, store read-only, ...)."""


class _Refused(BadInputError):
    """Raised by a group's on_commit hook: the group is rolled back; ``stage`` says why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage = stage


# -- records ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One row of ``migrations`` (see ``schema.create_tables``)."""

    id: int
    source: str
    session_id: str | None
    sha256: str | None
    size: int | None
    mtime_ns: int | None
    digest: str | None
    status: str
    stage: str | None
    reason: str | None
    imported_at: int | None
    verified_at: int | None
    finalized_at: int | None
    updated_at: int

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("imported_at", "verified_at", "finalized_at", "updated_at"):
            d[key.replace("_at", "")] = iso_ns(d[key])
        return d


@dataclass(frozen=True)
class AttachmentRecord:
    name: str
    source: str
    sha256: str
    size: int


def iso_ns(ns: int | None) -> str | None:
    if ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def load_records(db: sqlite3.Connection) -> list[Record]:
    """Every migration record ([] when the catalog has no migration tables)."""
    if not has_migration_tables(db):
        return []
    return [Record(*row) for row in db.execute(f"SELECT {_RECORD_COLUMNS} FROM migrations ORDER BY id")]


def load_record(db: sqlite3.Connection, source: str) -> Record | None:
    row = db.execute(f"SELECT {_RECORD_COLUMNS} FROM migrations WHERE source = ?", (source,)).fetchone()
    return Record(*row) if row else None


def active_record_of(db: sqlite3.Connection, session_id: str) -> Record | None:
    row = db.execute(f"SELECT {_RECORD_COLUMNS} FROM migrations WHERE session_id = ? AND status IN "
                     "('imported', 'verified', 'finalized')", (session_id,)).fetchone()
    return Record(*row) if row else None


def record_attachments(db: sqlite3.Connection, migration_id: int) -> list[AttachmentRecord]:
    return [AttachmentRecord(*r) for r in db.execute(
        "SELECT name, source, sha256, size FROM migration_attachments WHERE migration_id = ? ORDER BY name",
        (migration_id,))]


# -- outcomes and progress --------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What happened to one legacy file: ``imported`` (and verified), ``skipped`` or ``failed``."""

    source: str
    status: str
    session_id: str | None = None
    reason: str | None = None
    stage: str | None = None
    size: int = 0
    sha256: str | None = None
    attachments: int = 0

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class MigrationProgress:
    """A snapshot of the migrator's counters (like trio's ``statistics()`` objects).

    ``state``: idle, running, paused or cancelling. Counters cover the current run (or the
    last one, when idle): a run lasts from idle to idle and includes submissions queued
    meanwhile. ``bytes_*`` count legacy session-file bytes. ``eta_seconds`` is None until
    a rate is known. ``recent_failures``: the last 20 (source, reason) pairs, across runs.
    """

    state: str
    sessions_total: int
    sessions_done: int
    imported: int
    skipped: int
    failed: int
    bytes_total: int
    bytes_done: int
    queued: int
    current: str | None
    started_at: float | None
    elapsed_seconds: float
    bytes_per_second: float
    sessions_per_second: float
    eta_seconds: float | None
    recent_failures: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["recent_failures"] = [{"source": s, "reason": r} for s, r in self.recent_failures]
        return d


@dataclass
class ImportReport:
    """The result of ``import_dir``: one Outcome per legacy file, in the order they completed."""

    store: str
    legacy_dir: str
    started_at: float
    finished_at: float = 0.0
    interrupted: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    #: files of LEGACY_DIR/attachments no imported session refers to (orphans, or used only by failures)
    attachments_not_imported: list[str] = field(default_factory=list)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def imported(self) -> list[Outcome]:
        return self.of("imported")

    @property
    def skipped(self) -> list[Outcome]:
        return self.of("skipped")

    @property
    def failed(self) -> list[Outcome]:
        return self.of("failed")

    def as_dict(self) -> dict:
        seconds = max(self.finished_at - self.started_at, 1e-9)
        imported_bytes = sum(o.size for o in self.imported)
        return {
            "store": self.store, "legacy_dir": self.legacy_dir,
            "started": iso_ns(int(self.started_at * 1e9)), "finished": iso_ns(int(self.finished_at * 1e9)),
            "interrupted": self.interrupted,
            "totals": {"files": len(self.outcomes), "imported": len(self.imported), "skipped": len(self.skipped),
                       "failed": len(self.failed), "imported_bytes": imported_bytes,
                       "seconds": round(seconds, 3),
                       "imported_mb_per_second": round(imported_bytes / seconds / 1e6, 3),
                       "imported_sessions_per_second": round(len(self.imported) / seconds, 3)},
            "imported": [o.as_dict() for o in self.imported],
            "skipped": [o.as_dict() for o in self.skipped],
            "failed": [o.as_dict() for o in self.failed],
            "attachments_not_imported": self.attachments_not_imported,
        }


# -- where attachments come from ------------------------------------------------------------------

class _DirAttachments:
    """Attachments of a legacy directory: ``<dir>/<attachment-id>.<ext>`` (read-only)."""

    def __init__(self, directory: Path):
        self.directory = Path(os.path.abspath(directory))
        self._index: dict[str, list[str]] | None = None

    @property
    def index(self) -> dict[str, list[str]]:
        if self._index is None:
            self._index = legacy_files.scan_attachments(self.directory)
        return self._index

    def find(self, attachment_id: str) -> str:
        return legacy.pick_attachment(attachment_id, self.index, str(self.directory))

    def read(self, name: str, limits: Limits) -> tuple[bytes, str]:
        data, _ = legacy_files.read_file(self.directory / name, limits.max_attachment_bytes, f"attachment {name}")
        return data, str(self.directory / name)


class _StoreAttachments:
    """Attachments dropped into the store tree (``import/attachments/``)."""

    def __init__(self, store: Store, directory: str = IMPORT_ATTACHMENTS):
        self.store = store
        self.directory = directory

    def find(self, attachment_id: str) -> str:
        ino = self.store.resolve(self.directory)
        names = []
        if ino is not None:
            after = 0
            while batch := self.store.catalog.readdir(ino, after, 1000):
                names.extend(n.decode("utf-8", "surrogateescape") for _, n, _ in batch)
                after = batch[-1][0]
        return legacy.pick_attachment(attachment_id, legacy.attachment_index(names), self.directory)

    def read(self, name: str, limits: Limits) -> tuple[bytes, str]:
        path = f"{self.directory}/{name}"
        return _read_store_file(self.store, path, limits.max_attachment_bytes, "attachments"), STORE_SOURCE + path


def _read_store_file(store: Store, path: str, bound: int, stage: str) -> bytes:
    """The bytes of ``path`` in the store, refused (before reading) when over ``bound`` bytes."""
    try:
        ino = store.resolve(path)
        size = store.getattr(ino).size if ino is not None else None
        if size is not None and size > bound:
            raise LegacyError(stage, f"{path} is {size:,} bytes, over the bound of {bound:,} (the mount's "
                                     "memory limit sets it: raise --memory-limit, or unmount and run "
                                     "'sessionfs import')", size=size)
        data = store.read_path(path)
    except StoreError as exc:
        raise LegacyError(stage, f"cannot read {path}: {exc}") from None
    if len(data) > bound:
        raise LegacyError(stage, f"{path} is {len(data):,} bytes, over the bound of {bound:,}", size=len(data))
    return data


@dataclass
class _Job:
    """One legacy file to import."""

    source: str
    size: int
    mtime_ns: int
    attachments: _DirAttachments | _StoreAttachments
    path: str | None = None              # an OS path, or
    store_path: str | None = None        # a path inside the store tree
    check_name: bool = True


@dataclass
class _Pending:
    """A queued import group awaiting commit and verification."""

    job: _Job
    session_id: str
    sha256: str
    size: int
    digest: str
    attachments: dict[str, str]          # name -> sha256
    group: PathGroup | None = None       # None: verify an earlier run's commit
    record_id: int | None = None


def _legacy_error_outcome(job: _Job, exc: LegacyError) -> Outcome:
    return Outcome(job.source, "failed", exc.session_id, exc.reason, exc.stage,
                   exc.size if exc.size is not None else job.size, exc.sha256)


# -- the migrator -------------------------------------------------------------------------------

class Migrator:
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
        with store.catalog.write() as db:
            ensure_migration_tables(db)
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

    # -- control ---------------------------------------------------------------
    def pause(self) -> None:
        """Stop before the next session (the one in progress completes or is not written at all)."""
        self._unpaused.clear()

    def resume(self) -> None:
        self._unpaused.set()

    def cancel(self) -> None:
        """End the running import and drop queued submissions; sessions already queued for
        commit are still verified. A later import starts afresh (and resumes from the record)."""
        with self._lock:
            self._queue.clear()
        self._cancel.set()
        self._unpaused.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _checkpoint(self) -> bool:
        """Between sessions: wait while paused; False when cancelled."""
        while not self._unpaused.wait(0.2):
            if self._cancel.is_set():
                return False
        return not self._cancel.is_set()

    def _reset_counters(self) -> None:
        self._state = "idle"
        self._sessions_total = self._sessions_done = 0
        self._imported = self._skipped = self._failed = 0
        self._bytes_total = self._bytes_done = 0
        self._current: str | None = None
        self._started_at: float | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None
        if not hasattr(self, "_recent"):           # kept across runs: the last failures stay visible
            self._recent: collections.deque = collections.deque(maxlen=RECENT_FAILURES)

    def progress(self) -> MigrationProgress:
        with self._lock:
            running = self._state != "idle"
            elapsed = 0.0
            if self._started_at is not None:
                end = time.monotonic() if running or self._ended_mono is None else self._ended_mono
                elapsed = end - self._started_mono
            bps = self._bytes_done / elapsed if elapsed > 0 else 0.0
            sps = self._sessions_done / elapsed if elapsed > 0 else 0.0
            eta = 0.0 if not running else None
            if running and bps > 0 and self._bytes_total >= self._bytes_done:
                eta = (self._bytes_total - self._bytes_done) / bps
            state = self._state
            if state != "idle" and not self._unpaused.is_set():
                state = "paused"
            if state != "idle" and self._cancel.is_set():
                state = "cancelling"
            return MigrationProgress(
                state=state, sessions_total=self._sessions_total, sessions_done=self._sessions_done,
                imported=self._imported, skipped=self._skipped, failed=self._failed,
                bytes_total=self._bytes_total, bytes_done=self._bytes_done, queued=len(self._queue),
                current=self._current, started_at=self._started_at, elapsed_seconds=elapsed,
                bytes_per_second=bps, sessions_per_second=sps, eta_seconds=eta,
                recent_failures=tuple(self._recent))

    def _begin(self, files: int, nbytes: int) -> None:
        with self._lock:
            if self._state == "idle":
                self._reset_counters()
                self._state = "running"
                self._started_at = time.time()
                self._started_mono = time.monotonic()
            self._sessions_total += files
            self._bytes_total += nbytes

    def _end(self) -> None:
        with self._lock:
            if not self._queue and self._running_jobs == 0:
                self._state = "idle"
                self._current = None
                self._ended_mono = time.monotonic()
                self._cancel.clear()

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            self._sessions_done += 1
            self._bytes_done += outcome.size
            if outcome.status == "imported":
                self._imported += 1
            elif outcome.status == "skipped":
                self._skipped += 1
            else:
                self._failed += 1
                self._recent.append((outcome.source, outcome.reason or "failed"))
        level = logging.INFO if outcome.status == "failed" else logging.DEBUG
        log.log(level, "%s: %s%s", outcome.source, outcome.status, f": {outcome.reason}" if outcome.reason else "")

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
            jobs_list.append(_Job(entry.path, st.st_size, st.st_mtime_ns, None, path=entry.path))
        attachments = _DirAttachments(root / "attachments")
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
            recorded = {row[0] for row in self.store.catalog.reader().execute(
                "SELECT a.name FROM migration_attachments a JOIN migrations m ON m.id = a.migration_id "
                "WHERE m.status IN ('imported', 'verified', 'finalized') AND substr(a.source, 1, ?) = ?",
                (len(prefix), prefix))}
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
                job = _Job(rec.source, rec.size or 0, rec.mtime_ns or 0, None)
                if rec.source.startswith(STORE_SOURCE):
                    job.store_path = rec.source[len(STORE_SOURCE):]
                pend.append(self._pending_from_record(job, rec))
            for p in pend:
                outcomes.append(self._verify_batch([p])[0])
            if pend:
                self.store.flush()
                self._notify()
        return outcomes

    # -- background (the daemon) ------------------------------------------------------
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
        names = set()
        after = 0
        while batch := self.store.catalog.readdir(ino, after, 1000):
            names.update(n.decode("utf-8", "surrogateescape") for _, n, row in batch if stat.S_ISREG(row.mode))
            after = batch[-1][0]
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

    # -- jobs ----------------------------------------------------------------------
    def _file_job(self, path, attachments_dir, check_name) -> _Job:
        path = os.path.abspath(os.fspath(path))
        if attachments_dir is None:
            parent = Path(path).parent
            base = parent.parent if parent.name == "sessions" else parent
            attachments_dir = base / "attachments"
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        return _Job(path, size, mtime, _DirAttachments(Path(attachments_dir)), path=path, check_name=check_name)

    def _store_job(self, path: str) -> _Job | Outcome:
        norm = "/".join(p.decode("utf-8", "surrogateescape") for p in Store.split_path(path))
        source = STORE_SOURCE + norm
        self.store.settle()      # the dropped file's own write is committed: its size/mtime are final
        ino = self.store.resolve(norm)
        if ino is None:
            return Outcome(source, "skipped", reason="no longer in the store")
        row = self.store.getattr(ino)
        if not stat.S_ISREG(row.mode):
            return Outcome(source, "skipped", reason="not a regular file")
        return _Job(source, row.size, row.mtime_ns, _StoreAttachments(self.store), store_path=norm,
                    check_name=False)

    def _run_single(self, job: _Job, counted: bool = False) -> Outcome:
        got: list[Outcome] = []
        with self._run_lock:
            if not counted:
                self._cancel.clear()
                self._begin(1, job.size)
            with self._lock:
                self._running_jobs += 0 if counted else 1
            try:
                self._run([job], jobs=1, batch=1, emit=lambda o, ids=(): got.append(o), referenced=set())
            finally:
                if not counted:
                    with self._lock:
                        self._running_jobs -= 1
                    self._end()
        if not got:
            return Outcome(job.source, "skipped", reason="cancelled before it started", size=job.size)
        return got[0]

    # -- the pipeline ---------------------------------------------------------------------
    def _run(self, jobs_list: list[_Job], *, jobs: int, batch: int, emit, referenced: set[str]) -> bool:
        """Process jobs in order; False when cancelled before the end.

        Pipelined: while batch k commits in the persistence worker, batch k+1 is prepared
        and queued; then batch k is verified. One durable flush at the end (each session
        commits atomically with its record, so a power loss only means importing the
        sessions of the last seconds again)."""
        reader = self.store.catalog.reader()
        records = {r.source: r for r in load_records(reader)}
        claimed: dict[str, str] = {}
        current: list[_Pending] = []
        current_bytes = 0
        previous: list[_Pending] = []
        complete = True

        def finish(outcome: Outcome) -> None:
            self._count(outcome)
            emit(outcome)

        def verify_previous() -> None:
            nonlocal previous
            batch_, previous = previous, []
            for outcome in self._verify_batch(batch_):
                finish(outcome)

        try:
            for job, prep in self._prepared(jobs_list, jobs, records):
                if not self._checkpoint():
                    complete = False
                    break
                with self._lock:
                    self._current = job.source
                result = self._handle(job, prep, records.get(job.source), claimed, referenced)
                if isinstance(result, Outcome):
                    finish(result)
                    continue
                current.append(result)
                current_bytes += result.group.nbytes if result.group is not None else 0
                if len(current) >= batch or current_bytes >= self.batch_bytes:
                    verify_previous()
                    previous, current, current_bytes = current, [], 0
        finally:
            verify_previous()
            previous, current = current, []
            verify_previous()
            self.store.flush()
            self._notify()
        return complete

    def _plan(self, job: _Job, rec: Record | None) -> str:
        """'skip', 'verify' (from the record) or 'prepare'."""
        if rec is None or rec.status == "failed":
            return "prepare"
        same = rec.size == job.size and rec.mtime_ns == job.mtime_ns and job.size > 0
        if same and rec.status in ("verified", "finalized"):
            return "skip"
        if same and rec.status == "imported":
            return "verify"
        return "prepare"

    def _prepared(self, jobs_list: list[_Job], jobs: int, records: dict[str, Record]) -> Iterator[tuple]:
        """(job, Prepared | LegacyError | 'skip' | 'verify') in job order; prepares ahead in
        ``jobs`` worker processes when asked."""
        plans = [(job, self._plan(job, records.get(job.source))) for job in jobs_list]
        if jobs <= 1 or sum(1 for _, p in plans if p == "prepare") < 2:
            for job, plan in plans:
                yield job, (self._prepare_here(job) if plan == "prepare" else plan)
            return
        ctx = multiprocessing.get_context("forkserver")
        window: collections.deque = collections.deque()
        in_flight = 0
        budget = max(self.batch_bytes, 2 * max((j.size for j in jobs_list), default=0))
        it = iter(plans)
        exhausted = False
        broken = False
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                                    initializer=legacy_files.worker_init,
                                                    initargs=(os.getpid(),)) as pool:
            try:
                while True:
                    while not exhausted and len(window) < 2 * jobs and (in_flight < budget or not window):
                        try:
                            job, plan = next(it)
                        except StopIteration:
                            exhausted = True
                            break
                        fut = None
                        if plan == "prepare" and job.path is not None and not broken:
                            fut = pool.submit(legacy_files.prepare_file, job.path, self.limits, job.check_name)
                            in_flight += job.size
                        window.append((job, plan, fut))
                    if not window:
                        return
                    job, plan, fut = window.popleft()
                    if plan != "prepare":
                        yield job, plan
                        continue
                    if fut is None:
                        yield job, self._prepare_here(job)
                        continue
                    in_flight -= job.size
                    try:
                        result = fut.result()
                    except LegacyError as exc:
                        result = exc
                    except concurrent.futures.process.BrokenProcessPool:
                        log.warning("a preparing worker died; preparing %s and the rest here", job.source)
                        broken = True
                        result = self._prepare_here(job)
                    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
                        result = LegacyError("parse", f"cannot be prepared: {type(exc).__name__}: {exc}")
                    yield job, result
            finally:
                for _, _, fut in window:
                    if fut is not None:
                        fut.cancel()

    def _prepare_here(self, job: _Job) -> Prepared | LegacyError:
        try:
            if job.store_path is not None:
                data = _read_store_file(self.store, job.store_path, self.limits.max_file_bytes, "read")
                return legacy.prepare_bytes(data, source=job.source, mtime_ns=job.mtime_ns, limits=self.limits)
            return legacy_files.prepare_file(job.path, self.limits, job.check_name)
        except LegacyError as exc:
            return exc
        except MemoryError:
            return LegacyError("read", "out of memory while preparing this file")

    def _handle(self, job: _Job, prep, rec: Record | None, claimed: dict[str, str],
                referenced: set[str]) -> Outcome | _Pending:
        if prep == "skip":
            return Outcome(job.source, "skipped", rec.session_id, f"already imported ({iso_ns(rec.imported_at)})",
                           size=job.size, sha256=rec.sha256)
        if prep == "verify":
            return self._pending_from_record(job, rec)
        if isinstance(prep, LegacyError):
            outcome = _legacy_error_outcome(job, prep)
            self._record_failure(job, outcome, rec)
            return outcome
        p: Prepared = prep
        job.size, job.mtime_ns = p.size, p.mtime_ns
        if rec is not None and rec.status in ACTIVE:
            if rec.sha256 == p.sha256:
                if rec.status == "imported":
                    return self._pending_from_record(job, rec)
                self._touch_record(rec, p)
                return Outcome(job.source, "skipped", p.session_id,
                               f"already imported ({iso_ns(rec.imported_at)}); content unchanged",
                               size=p.size, sha256=p.sha256)
            return Outcome(job.source, "failed", p.session_id,
                           f"the file changed since it was imported ({iso_ns(rec.imported_at)}; sha256 "
                           f"{rec.sha256[:12]}... -> {p.sha256[:12]}...); the store keeps the imported version",
                           "changed", p.size, p.sha256)
        other = active_record_of(self.store.catalog.reader(), p.session_id)
        if other is not None and other.source != job.source:
            if other.sha256 == p.sha256:
                return Outcome(job.source, "skipped", p.session_id, f"already imported from {other.source}",
                               size=p.size, sha256=p.sha256)
            return self._fail(job, p, "exists", f"session {p.session_id} was already imported from "
                                                f"{other.source}, with different content; not overwritten", rec)
        if p.session_id in claimed:
            return self._fail(job, p, "exists", f"session {p.session_id} is also in {claimed[p.session_id]}, "
                                                "imported first in this run", rec)
        base = f"{SESSIONS_DIR}/{p.session_id}"
        if self.store.exists(base):
            return self._fail(job, p, "exists", f"a session {p.session_id} already exists in the store "
                                                "(not from this file); not overwritten", rec)
        writes: dict[str, bytes] = {f"{base}/{path}": data for path, data in p.files.items()}
        p.files = {}
        rows: list[AttachmentRecord] = []
        try:
            for attachment_id in p.attachment_ids:
                name = job.attachments.find(attachment_id)
                data, source = job.attachments.read(name, self.limits)
                rows.append(AttachmentRecord(name, source, hashlib.sha256(data).hexdigest(), len(data)))
                writes[f"{base}/{ATTACHMENTS_DIR}/{name}"] = data
                referenced.add(name)
        except LegacyError as exc:
            return self._fail(job, p, exc.stage, exc.reason, rec)
        claimed[p.session_id] = job.source
        group = self.store.write_files(writes, on_commit=self._import_hook(job, p, rows))
        self._touch(base)
        return _Pending(job, p.session_id, p.sha256, p.size, p.digest, {r.name: r.sha256 for r in rows}, group)

    def _pending_from_record(self, job: _Job, rec: Record) -> _Pending:
        rows = record_attachments(self.store.catalog.reader(), rec.id)
        return _Pending(job, rec.session_id, rec.sha256, rec.size or 0, rec.digest,
                        {r.name: r.sha256 for r in rows}, None, rec.id)

    def _fail(self, job: _Job, p: Prepared, stage: str, reason: str, rec: Record | None) -> Outcome:
        outcome = Outcome(job.source, "failed", p.session_id, reason, stage, p.size, p.sha256)
        self._record_failure(job, outcome, rec)
        return outcome

    # -- record writes (each inside a write_files group) -------------------------------------
    def _import_hook(self, job: _Job, p: Prepared, rows: list[AttachmentRecord]):
        store = self.store
        base = f"{SESSIONS_DIR}/{p.session_id}"

        def hook(db: sqlite3.Connection) -> None:
            if store.resolve(base, db) is not None:
                raise _Refused("exists", f"a session {p.session_id} already exists in the store; not overwritten")
            now = time.time_ns()
            try:
                db.execute(
                    "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, "
                    "reason, imported_at, verified_at, finalized_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'imported', NULL, NULL, ?, NULL, NULL, ?) "
                    "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
                    "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest, "
                    "status = 'imported', stage = NULL, reason = NULL, imported_at = excluded.imported_at, "
                    "verified_at = NULL, finalized_at = NULL, updated_at = excluded.updated_at",
                    (job.source, p.session_id, p.sha256, p.size, p.mtime_ns, p.digest, now, now))
            except sqlite3.IntegrityError:
                raise _Refused("exists", f"session {p.session_id} is already imported from another file") from None
            mid = db.execute("SELECT id FROM migrations WHERE source = ?", (job.source,)).fetchone()[0]
            db.execute("DELETE FROM migration_attachments WHERE migration_id = ?", (mid,))
            db.executemany("INSERT INTO migration_attachments (migration_id, name, source, sha256, size) "
                           "VALUES (?, ?, ?, ?, ?)", [(mid, r.name, r.source, r.sha256, r.size) for r in rows])
        return hook

    def _record_failure(self, job: _Job, outcome: Outcome, rec: Record | None) -> None:
        """A failed record for ``job.source`` (never replacing an active one), plus an ``.error``
        file beside a dropped store file."""
        if outcome.stage == "changed" or (rec is not None and rec.status in ACTIVE):
            return
        writes: dict[str, bytes] = {}
        if job.store_path is not None:
            writes[job.store_path + ERROR_SUFFIX] = (f"not imported: {outcome.reason}\n").encode()
            self._touch(job.store_path + ERROR_SUFFIX)

        def hook(db: sqlite3.Connection) -> None:
            now = time.time_ns()
            db.execute(
                "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
                "updated_at) VALUES (?, ?, ?, ?, ?, NULL, 'failed', ?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = NULL, status = 'failed', "
                "stage = excluded.stage, reason = excluded.reason, imported_at = NULL, verified_at = NULL, "
                "updated_at = excluded.updated_at WHERE migrations.status = 'failed'",
                (job.source, outcome.session_id, outcome.sha256, outcome.size, job.mtime_ns, outcome.stage,
                 outcome.reason, now))
        self.store.write_files(writes, on_commit=hook)

    def _touch_record(self, rec: Record, p: Prepared) -> None:
        """Same content, new mtime (a copy or touch): remember it so the next run skips unread."""
        def hook(db: sqlite3.Connection) -> None:
            db.execute("UPDATE migrations SET mtime_ns = ?, updated_at = ? WHERE id = ? AND sha256 = ?",
                       (p.mtime_ns, time.time_ns(), rec.id, p.sha256))
        self.store.write_files({}, on_commit=hook)

    # -- verification ----------------------------------------------------------------------
    def _verify_batch(self, pending: list[_Pending]) -> list[Outcome]:
        """Wait for the batch's commits, verify each session, record the verdicts durably."""
        for p in pending:
            if p.group is not None:
                p.group.done.wait()
        outcomes: list[Outcome] = []
        verified: list[_Pending] = []
        for p in pending:
            group, p.group = p.group, None
            n = len(p.attachments)
            if group is not None and group.error is not None:
                stage = getattr(group.error, "stage", "write")
                outcome = Outcome(p.job.source, "failed", p.session_id, f"not written: {group.error}", stage,
                                  p.size, p.sha256)
                self._record_failure(p.job, outcome, None)
                outcomes.append(outcome)
                continue
            problem = self._verify(p)
            if problem is None:
                verified.append(p)
                outcomes.append(Outcome(p.job.source, "imported", p.session_id, None, None, p.size, p.sha256, n))
            else:
                self._remove(p, problem)
                outcomes.append(Outcome(p.job.source, "failed", p.session_id,
                                        f"verification failed, the session was removed again: {problem}",
                                        "verify", p.size, p.sha256))
        if verified:
            self._mark_verified(verified)
        return outcomes

    def _verify(self, p: _Pending) -> str | None:
        """None when the store's export of the session equals what was recorded; else why not."""
        sid = p.session_id
        try:
            doc = self.sessions.load_full_session(sid)
        except StoreError as exc:
            return f"cannot export the session: {exc}"
        if doc is None:
            return f"{SESSIONS_DIR}/{sid}/metadata.json is missing"
        digest = legacy.canonical_digest(doc)
        del doc
        if digest != p.digest:
            return f"the exported JSON values differ from the legacy file (digest {digest[:12]}... != {p.digest[:12]}...)"
        base = f"{SESSIONS_DIR}/{sid}/{ATTACHMENTS_DIR}"
        present = _list_names(self.store, base)
        missing = sorted(set(p.attachments) - present)
        if missing:
            return f"attachments missing from {base}: {missing[:5]}"
        for name, sha in sorted(p.attachments.items()):
            ino = self.store.resolve(f"{base}/{name}")
            try:
                got = self.store.content_hash(ino)
            except StoreError as exc:
                return f"attachment {name}: cannot be read back: {exc}"
            if got != sha:
                return f"attachment {name}: stored bytes differ (sha256 {got[:12]}... != {sha[:12]}...)"
        return None

    def _mark_verified(self, verified: list[_Pending]) -> None:
        sources = [p.job.source for p in verified]

        def hook(db: sqlite3.Connection) -> None:
            now = time.time_ns()
            db.executemany("UPDATE migrations SET status = 'verified', verified_at = ?, updated_at = ? "
                           "WHERE source = ? AND status = 'imported'", [(now, now, s) for s in sources])
        dropped = [p for p in verified if p.job.store_path is not None]
        self.store.write_files({}, on_commit=hook)
        for p in dropped:                 # a dropped file goes once its session is verified
            self._remove_dropped(p)

    def _remove_dropped(self, p: _Pending) -> None:
        path = p.job.store_path
        size, mtime = p.job.size, p.job.mtime_ns
        store = self.store

        def hook(db: sqlite3.Connection) -> None:
            ino = store.resolve(path, db)
            row = store.catalog.inode(ino, db) if ino is not None else None
            if row is not None and (row.size, row.mtime_ns) != (size, mtime):
                raise _Refused("changed", f"{path} changed while it was imported; kept")
        writes = {path: None}
        if store.exists(path + ERROR_SUFFIX):
            writes[path + ERROR_SUFFIX] = None
        store.write_files(writes, on_commit=hook)
        for written in writes:
            self._touch(written)

    def _remove(self, p: _Pending, reason: str) -> None:
        """Take a session that failed verification out again, and record why (one group)."""
        source = p.job.source
        full = f"verification failed, the session was removed again: {reason}"

        def hook(db: sqlite3.Connection) -> None:
            db.execute("UPDATE migrations SET status = 'failed', stage = 'verify', reason = ?, imported_at = NULL, "
                       "verified_at = NULL, updated_at = ? WHERE source = ?", (full, time.time_ns(), source))
            db.execute("DELETE FROM migration_attachments WHERE migration_id IN "
                       "(SELECT id FROM migrations WHERE source = ?)", (source,))
        writes = {}
        if p.job.store_path is not None:
            writes[p.job.store_path + ERROR_SUFFIX] = f"not imported: {full}\n".encode()
            self._touch(p.job.store_path + ERROR_SUFFIX)
        log.error("%s: %s", source, full)
        self.store.write_files(writes, delete_trees=[f"{SESSIONS_DIR}/{p.session_id}"], on_commit=hook)
        self._touch(f"{SESSIONS_DIR}/{p.session_id}")


def _list_names(store: Store, path: str) -> set[str]:
    """Names in a committed directory of the store ({} when absent), without waiting on the queue."""
    ino = store.resolve(path)
    names: set[str] = set()
    if ino is None:
        return names
    after = 0
    while batch := store.catalog.readdir(ino, after, 1000):
        names.update(n.decode("utf-8", "surrogateescape") for _, n, _ in batch)
        after = batch[-1][0]
    return names


# -- status and finalize ------------------------------------------------------------------------


__all__ = ["AttachmentRecord", "ImportReport", "MigrationError", "MigrationProgress", "Migrator", "Outcome",
           "Record", "load_records"]
