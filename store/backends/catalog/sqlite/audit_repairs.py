"""The audit domain's repairs on SQLite (``store.backends.catalog.audit`` documents each)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from typing import Iterable

from store.backends.catalog.audit import FileReference
from store.backends.catalog.sqlite import counters
from store.backends.catalog.sqlite.audit_checks import LOST_CHUNK, is_lost
from store.backends.catalog.sqlite.errors import translated
from store.backends.catalog.rows import LOST_BLOCK, LOST_HASH_PREFIX


@translated
class SqliteAuditRepairs:
    """The write operations of ``SqliteAudit`` (run inside the caller's write transaction)."""

    _db: sqlite3.Connection

    def drop_references(self, ino: int) -> int:
        return self._db.execute("DELETE FROM file_chunks WHERE ino = ?", (ino,)).rowcount

    def chunk_exists(self, chunk_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM chunks WHERE id = ?", (chunk_id,)).fetchone() is not None

    def drop_reference(self, ino: int, off: int, chunk_id: int) -> None:
        self._db.execute("DELETE FROM file_chunks WHERE ino = ? AND off = ? AND chunk_id = ?", (ino, off, chunk_id))

    def tombstone_chunk(self, chunk_id: int, length: int, at_ns: int) -> None:
        tomb = LOST_HASH_PREFIX + hashlib.sha256(b"sessionfs lost chunk %d" % chunk_id).digest()
        self._db.execute("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                         "VALUES (?, ?, ?, ?, 0, 0, ?)", (chunk_id, tomb, max(0, length), LOST_BLOCK, at_ns))

    def mark_chunk_lost(self, chunk_id: int) -> list[FileReference]:
        row = self._db.execute("SELECT hash, block_id, length FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is None or is_lost(bytes(row[0]), row[1]):
            return []
        refs = self._db.execute("SELECT ino, off FROM file_chunks WHERE chunk_id = ?", (chunk_id,)).fetchall()
        if not refs:
            self._db.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
            return []
        self._db.execute("UPDATE chunks SET hash = ?, block_id = ?, block_off = 0 WHERE id = ?",
                         (LOST_HASH_PREFIX + bytes(row[0])[:32], LOST_BLOCK, chunk_id))
        return [FileReference(ino, off, row[2]) for ino, off in refs]

    def drop_block(self, block_id: int) -> bool:
        if self._db.execute("SELECT 1 FROM chunks WHERE block_id = ? LIMIT 1", (block_id,)).fetchone():
            return False
        if not self._db.execute("DELETE FROM blocks WHERE id = ?", (block_id,)).rowcount:
            return False
        self._db.execute("DELETE FROM recompressed WHERE block_id = ?", (block_id,))
        return True

    def drop_pack(self, pack_id: int) -> bool:
        if self._db.execute("SELECT 1 FROM blocks WHERE pack_id = ? LIMIT 1", (pack_id,)).fetchone():
            return False
        return self._db.execute("DELETE FROM packs WHERE id = ?", (pack_id,)).rowcount > 0

    def shrink_pack(self, pack_id: int, size: int) -> None:
        self._db.execute("UPDATE packs SET size = ? WHERE id = ? AND size > ?", (size, pack_id, size))

    def record_lost_found(self, ino: int, path: str | None, reason: str, ranges: list[tuple[int, int]],
                          at_ns: int) -> None:
        self._db.execute("INSERT INTO lost_found (ino, path, reason, ranges, found_at) VALUES (?, ?, ?, ?, ?)",
                         (ino, path, reason, json.dumps(ranges), at_ns))

    def drop_entry(self, parent: int, name: bytes) -> None:
        self._db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (parent, name))

    def recount_refcounts(self, at_ns: int) -> int:
        fixed = self._db.execute(
            "UPDATE chunks SET refcount = (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = chunks.id) "
            "WHERE refcount != (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = chunks.id)").rowcount
        return fixed + self._db.execute("UPDATE chunks SET unref_since = ? WHERE refcount = 0 AND unref_since IS NULL",
                                        (at_ns,)).rowcount

    def recount_nlinks(self, inos: Iterable[int]) -> int:
        changed = 0
        for ino in inos:
            row = self._db.execute("SELECT mode, nlink FROM inodes WHERE id = ?", (ino,)).fetchone()
            if row is None:
                continue
            if stat.S_ISDIR(row[0]):
                expected = 2 + self._db.execute(
                    "SELECT count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
                    "WHERE d.parent = ? AND c.mode & 61440 = 16384", (ino,)).fetchone()[0]
            else:
                expected = self._db.execute("SELECT count(*) FROM dentries WHERE ino = ?", (ino,)).fetchone()[0]
            if expected and row[1] != expected:
                self._db.execute("UPDATE inodes SET nlink = ? WHERE id = ?", (expected, ino))
                changed += 1
        return changed

    def drop_session_rows(self, session_id: str) -> None:
        for table, column in (("session_tags", "session_id"), ("session_topics", "session_id"), ("sessions", "id")):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (session_id,))

    def prune_lost_found(self) -> int:
        return self._db.execute(
            "DELETE FROM lost_found WHERE ino NOT IN (SELECT f.ino FROM file_chunks f JOIN chunks c "
            f"ON c.id = f.chunk_id WHERE {LOST_CHUNK})").rowcount

    def store_recounted_totals(self) -> None:
        counters.store_sums(self._db, counters.recount(self._db))
