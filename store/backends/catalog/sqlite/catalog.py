"""SQLite access: one serialized writer, a read connection per thread.

WAL mode lets readers run while the writer commits. Writes go through
``SqliteCatalog.write()``, which holds a lock so namespace operations (from mount
handler threads) and the persistence worker's batch commits never interleave.
Commits use ``synchronous=NORMAL`` (no fsync: safe against a process crash,
and the periodic checkpoint bounds what a power loss can take); a durable
commit (fsync) switches to FULL for that one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Iterator

from . import upgrade
from ..interface import Catalog
from ..rows import Changes
from store.core.errors import FormatError
from .errors import open_error, sqlite_errors, transaction_error
from .view import SqliteView
from .schema import FORMAT_VERSION, create_tables, ensure_maintenance_tables, read_format_version

READER_CACHE_KIB = 2000
WRITER_CACHE_KIB = 16000


def _connect(path: Path, readonly: bool, cache_kib: int = READER_CACHE_KIB) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if readonly else 'rw'}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=60)
    db.execute("PRAGMA busy_timeout = 60000")
    # Page cache: 16 MiB for the one writer, a little for each reader (one per thread, and the
    # FUSE layer runs dozens of threads: 16 MiB each put the daemon far past its cache bound).
    db.execute(f"PRAGMA cache_size = {-(WRITER_CACHE_KIB if not readonly else cache_kib)}")
    db.execute("PRAGMA temp_store = MEMORY")
    return db


def now_ns() -> int:
    return time.time_ns()



class SqliteCatalog(Catalog):
    """``Catalog`` (store.backends.catalog.interface) on one SQLite database; see the module
    docstring."""

    def __init__(self, path: Path, *, readonly: bool = False, reader_cache_kib: int = READER_CACHE_KIB):
        self.path = Path(path)
        self.readonly = readonly
        self.reader_cache_kib = reader_cache_kib
        self._local = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._writer: sqlite3.Connection | None = None
        self.commits = 0
        self._checkpointed = 0
        self._hooks: list[Callable[[Changes], None]] = []
        self._touched = _Touched()                      # what the open write transaction changed
        self.upgraded_from: int | None = None           # the format a writable open found
        try:
            self._open_checked()
        except BaseException as exc:
            self.close()
            if isinstance(exc, sqlite3.Error):
                raise open_error(self.path, exc, self.readonly) from None
            raise

    def _open_checked(self) -> None:
        if not self.readonly:
            self._writer = _connect(self.path, readonly=False)
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise FormatError(f"{self.path}: cannot switch the catalog to WAL mode (got {mode})")
            self._writer.execute("PRAGMA synchronous = NORMAL")
            self._writer.execute("PRAGMA wal_autocheckpoint = 4000")
            # An INSERT OR REPLACE deletes the row it replaces: its delete triggers must run too
            # (the counters' triggers, counters).
            self._writer.execute("PRAGMA recursive_triggers = ON")
            self._watch_changes(self._writer)
            self._writer_view = SqliteView(self._writer, writable=True)
        if self._writer is not None:
            self.upgraded_from = upgrade.run(self._writer, self.path)
            with self.write():
                ensure_maintenance_tables(self._writer)
        #: The format as read: older than FORMAT_VERSION only when opened read-only (not upgraded).
        self.format_version = upgrade.readable(read_format_version(self.reader()._db), self.path)

    def _watch_changes(self, db: sqlite3.Connection) -> None:
        """Temporary triggers (this connection only, nothing stored) report every change the
        commit hooks hear of (``Changes``): inode rows, a file's chunk list, a chunk's length or
        removal, and names created or removed. ``write`` hands what a transaction touched to the hooks when it ends."""
        db.create_function("sessionfs_changed", 2, self._touched.note)
        for table, key, kind in (("inodes", "id", _Touched.ROW), ("file_chunks", "ino", _Touched.DATA)):
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_insert AFTER INSERT ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, NEW.{key}); END")
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_update AFTER UPDATE ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, OLD.{key}), sessionfs_changed({kind}, NEW.{key}); END")
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_delete AFTER DELETE ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, OLD.{key}); END")
        db.execute("CREATE TEMP TRIGGER watch_chunks_length AFTER UPDATE OF length ON main.chunks "
                   f"BEGIN SELECT sessionfs_changed({_Touched.EVERYTHING}, 0); END")
        db.execute("CREATE TEMP TRIGGER watch_chunks_delete AFTER DELETE ON main.chunks "
                   f"BEGIN SELECT sessionfs_changed({_Touched.EVERYTHING}, 0); END")
        db.create_function("sessionfs_entry", 2, self._touched.entry)
        db.execute("CREATE TEMP TRIGGER watch_dentries_insert AFTER INSERT ON main.dentries "
                   "BEGIN SELECT sessionfs_entry(NEW.parent, NEW.name); END")
        db.execute("CREATE TEMP TRIGGER watch_dentries_update AFTER UPDATE ON main.dentries "
                   "BEGIN SELECT sessionfs_entry(OLD.parent, OLD.name), sessionfs_entry(NEW.parent, NEW.name); END")
        db.execute("CREATE TEMP TRIGGER watch_dentries_delete AFTER DELETE ON main.dentries "
                   "BEGIN SELECT sessionfs_entry(OLD.parent, OLD.name); END")

    @staticmethod
    def initialize(path: Path, store_id: str) -> None:
        db = _connect_create(path)
        try:
            create_tables(db)
            db.execute("BEGIN")
            now = now_ns()
            db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                           [("format_version", FORMAT_VERSION), ("created", now), ("store_id", store_id)])
            db.execute("COMMIT")
        finally:
            db.close()

    # -- connections -------------------------------------------------------
    def reader(self) -> SqliteView:
        """This thread's read view (``view.SqliteView``), its connection opened on first use.

        It is closed when the thread exits: the FUSE layer's worker threads come and go
        (trio retires a thread idle for 10 s), and a connection kept for every thread that
        ever ran would leak its file descriptors and page cache for the daemon's lifetime."""
        holder = getattr(self._local, "reader", None)
        if holder is None:
            try:
                db = _connect(self.path, readonly=True, cache_kib=self.reader_cache_kib)
            except sqlite3.Error as exc:
                raise open_error(self.path, exc, True) from exc
            holder = _ThreadReader(db)
            with self._readers_lock:
                self._all_readers.append(db)
            weakref.finalize(holder, self._retire, db)
            self._local.reader = holder
        return holder.view

    def _retire(self, db: sqlite3.Connection) -> None:
        with self._readers_lock:
            try:
                self._all_readers.remove(db)
            except ValueError:
                return          # closed already by close()
        db.close()

    def open_readers(self) -> int:
        """How many read connections are open (one per live thread that has read)."""
        with self._readers_lock:
            return len(self._all_readers)

    def in_snapshot(self) -> bool:
        holder = getattr(self._local, "reader", None)
        return holder is not None and holder.view.in_transaction

    def add_commit_hook(self, fn: Callable[[Changes], None]) -> None:
        self._hooks.append(fn)

    @contextlib.contextmanager
    def write(self, durable: bool = False) -> Iterator[SqliteView]:
        """A write transaction's view; commits on success, rolls back on any exception (an
        ``sqlite3`` error becomes a ``CatalogError``)."""
        if self._writer is None:
            raise FormatError(f"{self.path} is open read-only")
        with self._write_lock:
            db = self._writer
            try:
                if durable:
                    db.execute("PRAGMA synchronous = FULL")
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer_view
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                self.commits += 1
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise transaction_error(self.path, exc) from exc
            finally:
                changes = self._touched.take()
                if changes:
                    for fn in self._hooks:
                        fn(changes)
                if durable:
                    db.execute("PRAGMA synchronous = NORMAL")

    def checkpoint(self) -> None:
        """Sync the WAL and copy it into the database (bounds the power-loss window)."""
        if self._writer is not None and self.commits != self._checkpointed:
            with self._write_lock:
                done = self.commits
                with sqlite_errors("checkpoint"):
                    self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._checkpointed = done

    def close(self) -> None:
        with self._readers_lock:
            for db in self._all_readers:
                db.close()
            self._all_readers.clear()
        self._local = threading.local()
        if self._writer is not None:
            with self._write_lock:
                try:
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
                self._writer.close()
                self._writer = None


class _Touched:
    """What the open write transaction changed, as the change triggers report it."""
    ROW, DATA, EVERYTHING = 0, 1, 2

    def __init__(self):
        self.inodes: set[int] = set()
        self.contents: set[int] = set()
        self.entries: set[tuple[int, bytes]] = set()
        self.everything = False

    def entry(self, parent: int, name: bytes) -> None:
        self.entries.add((parent, bytes(name)))

    def note(self, kind: int, ino: int) -> None:
        if kind == self.ROW:
            self.inodes.add(ino)
        elif kind == self.DATA:
            self.contents.add(ino)
        else:
            self.everything = True

    def take(self) -> Changes:
        changes = Changes(frozenset(self.inodes), frozenset(self.contents), self.everything,
                          frozenset(self.entries))
        self.inodes, self.contents, self.entries, self.everything = set(), set(), set(), False
        return changes


class _ThreadReader:
    """Holds one thread's read view; its finalizer closes the connection."""
    __slots__ = ("view", "__weakref__")

    def __init__(self, db: sqlite3.Connection):
        self.view = SqliteView(db, writable=False)


def _connect_create(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)
