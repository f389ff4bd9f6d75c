"""SQLite access: one serialized writer, a read connection per thread.

WAL mode lets readers run while the writer commits. Writes go through
``Catalog.write()``, which holds a lock so namespace operations (from mount
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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import upgrade
from store.backends.catalog.rows import BlockRow
from store.backends.catalog.attr_cache import CAPACITY, DATA, EVERYTHING, ROW, AttrCache
from store.core.errors import FormatError, IntegrityError
from store.core.rewrite import Extent
from .view import SqliteView
from .schema import FORMAT_VERSION, ROOT_INO, create_tables, read_format_version


@dataclass(slots=True)
class InodeRow:
    id: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    content_seq: int
    target: bytes | None


INODE_COLUMNS = "id, mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, content_seq, target"


@dataclass(slots=True, frozen=True)
class ChunkLocation:
    off: int          # offset of the chunk in the file
    length: int
    chunk_id: int
    hash: bytes
    block_id: int
    block_off: int


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


class Catalog:
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
        self.attrs = AttrCache(0 if readonly else CAPACITY)     # read-only: others commit unseen
        self._touched: set[tuple[int, int]] = set()    # (kind, ino) changed by the open transaction
        self.upgraded_from: int | None = None           # the format a writable open found
        try:
            self._open_checked()
        except BaseException as exc:
            self.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise FormatError(f"{self.path} is not a sessionfs catalog: {exc}") from None
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
        #: The format as read: older than FORMAT_VERSION only when opened read-only (not upgraded).
        self.format_version = upgrade.readable(read_format_version(self.reader()), self.path)

    def _watch_changes(self, db: sqlite3.Connection) -> None:
        """Temporary triggers (this connection only, nothing stored) report every change to what
        the attribute cache holds: inode rows, a file's chunk list, a chunk's length. ``write``
        hands what a transaction touched to the cache when it ends."""
        db.create_function("sessionfs_changed", 2, self._note_change)
        for table, key, kind in (("inodes", "id", ROW), ("file_chunks", "ino", DATA)):
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_insert AFTER INSERT ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, NEW.{key}); END")
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_update AFTER UPDATE ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, OLD.{key}), sessionfs_changed({kind}, NEW.{key}); END")
            db.execute(f"CREATE TEMP TRIGGER watch_{table}_delete AFTER DELETE ON main.{table} "
                       f"BEGIN SELECT sessionfs_changed({kind}, OLD.{key}); END")
        db.execute("CREATE TEMP TRIGGER watch_chunks_length AFTER UPDATE OF length ON main.chunks "
                   f"BEGIN SELECT sessionfs_changed({EVERYTHING}, 0); END")
        db.execute("CREATE TEMP TRIGGER watch_chunks_delete AFTER DELETE ON main.chunks "
                   f"BEGIN SELECT sessionfs_changed({EVERYTHING}, 0); END")

    def _note_change(self, kind: int, ino: int) -> None:
        self._touched.add((kind, ino))

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
            db = _connect(self.path, readonly=True, cache_kib=self.reader_cache_kib)
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

    @contextlib.contextmanager
    def write(self, durable: bool = False) -> Iterator[SqliteView]:
        """A write transaction's view; commits on success, rolls back on any exception."""
        if self._writer is None:
            raise FormatError(f"{self.path} is open read-only")
        with self._write_lock:
            db = self._writer
            if durable:
                db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer_view
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")
                self.commits += 1
            finally:
                touched, self._touched = self._touched, set()
                self.attrs.changed(touched)
                if durable:
                    db.execute("PRAGMA synchronous = NORMAL")

    def checkpoint(self) -> None:
        """Sync the WAL and copy it into the database (bounds the power-loss window)."""
        if self._writer is not None and self.commits != self._checkpointed:
            with self._write_lock:
                done = self.commits
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

    # -- reads (any thread; pass ``db`` to read inside a write transaction) --
    def _db(self, db: sqlite3.Connection | None) -> sqlite3.Connection:
        return db if db is not None else self.reader()

    def meta(self, key: str, db=None):
        row = self._db(db).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def inode(self, ino: int, db=None) -> InodeRow | None:
        cacheable = db is None and self._cacheable()     # inside a write transaction: never
        row = self.attrs.row(ino) if cacheable else None
        if row is None:
            epoch = self.attrs.epoch
            row = self._db(db).execute(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = ?", (ino,)).fetchone()
            if row is not None and cacheable:
                self.attrs.fill_row(epoch, ino, row)
        return InodeRow(*row) if row else None

    def _cacheable(self) -> bool:
        """False while this thread's reader is inside a read transaction (an older snapshot)."""
        holder = getattr(self._local, "reader", None)
        return holder is None or not holder.view.in_transaction

    def data_bytes(self, inos: list[int]) -> dict[int, int]:
        """Committed bytes of each file that hold data, not holes (for st_blocks)."""
        cacheable = self._cacheable()
        out = {}
        missing = []
        for ino in inos:
            n = self.attrs.data_bytes(ino) if cacheable else None
            if n is None:
                missing.append(ino)
            else:
                out[ino] = n
        if not missing:
            return out
        epoch = self.attrs.epoch
        reader = self.reader()
        found = dict.fromkeys(missing, 0)
        for i in range(0, len(missing), 500):
            part = missing[i:i + 500]
            found.update(reader.execute(
                "SELECT f.ino, sum(c.length) FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                f"WHERE f.ino IN ({','.join('?' * len(part))}) GROUP BY f.ino", part))
        if cacheable:
            self.attrs.fill_data_bytes(epoch, found)
        out.update(found)
        return out

    def lookup(self, parent: int, name: bytes, db=None) -> int | None:
        row = self._db(db).execute("SELECT ino FROM dentries WHERE parent = ? AND name = ?",
                                   (parent, name)).fetchone()
        return row[0] if row else None

    def readdir(self, parent: int, after: int, limit: int, db=None) -> list[tuple[int, bytes, InodeRow]]:
        """Entries with rowid > ``after``, in rowid order, with their inodes."""
        rows = self._db(db).execute(
            f"SELECT d.rowid, d.name, {', '.join('i.' + c.strip() for c in INODE_COLUMNS.split(','))} "
            "FROM dentries d JOIN inodes i ON i.id = d.ino "
            "WHERE d.parent = ? AND d.rowid > ? ORDER BY d.rowid LIMIT ?", (parent, after, limit)).fetchall()
        return [(r[0], bytes(r[1]), InodeRow(*r[2:])) for r in rows]

    def children_count(self, parent: int, db=None) -> int:
        return self._db(db).execute("SELECT count(*) FROM dentries WHERE parent = ?", (parent,)).fetchone()[0]

    def extents(self, ino: int, db=None) -> list[Extent]:
        rows = self._db(db).execute(
            "SELECT f.off, c.length, f.chunk_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
            "WHERE f.ino = ? ORDER BY f.off", (ino,)).fetchall()
        return [Extent(*r) for r in rows]

    def locations(self, ino: int, start: int, end: int, max_chunk: int, db=None) -> list[ChunkLocation]:
        """Chunks of ``ino`` overlapping [start, end), in file order.

        A reference to a chunk the catalog does not have is an IntegrityError, never zeros."""
        rows = self._db(db).execute(
            "SELECT f.off, c.length, f.chunk_id, c.hash, c.block_id, c.block_off "
            "FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id "
            "WHERE f.ino = ? AND f.off > ? AND f.off < ? ORDER BY f.off",
            (ino, start - max_chunk, end)).fetchall()
        for r in rows:
            if r[1] is None:
                raise IntegrityError(f"file inode {ino} refers to chunk {r[2]} at offset {r[0]}, "
                                     "which the catalog does not have")
        return [ChunkLocation(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows if r[0] + r[1] > start]

    def block(self, block_id: int, db=None) -> BlockRow | None:
        row = self._db(db).execute(
            "SELECT id, pack_id, offset, length, raw_length, codec, dict_id FROM blocks WHERE id = ?",
            (block_id,)).fetchone()
        return BlockRow(*row) if row else None

    def names_of(self, ino: int, db=None) -> list[tuple[int, bytes]]:
        return [(p, bytes(n)) for p, n in self._db(db).execute(
            "SELECT parent, name FROM dentries WHERE ino = ? ORDER BY rowid", (ino,))]

    def path_of(self, ino: int, db=None) -> str | None:
        """One path of ``ino`` relative to the root ("sessions/x/metadata.json"), or None."""
        parts = []
        seen = set()
        while ino != ROOT_INO:
            if ino in seen:
                return None
            seen.add(ino)
            names = self.names_of(ino, db)
            if not names:
                return None
            ino, name = names[0]
            parts.append(name.decode("utf-8", "surrogateescape"))
        return "/".join(reversed(parts))


class _ThreadReader:
    """Holds one thread's read view; its finalizer closes the connection."""
    __slots__ = ("view", "__weakref__")

    def __init__(self, db: sqlite3.Connection):
        self.view = SqliteView(db, writable=False)


def _connect_create(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)
