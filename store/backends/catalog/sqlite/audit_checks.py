"""The audit domain's checks on SQLite (``store.backends.catalog.audit`` documents each)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from typing import Iterable, Iterator

from store.backends.catalog.audit import (ChunkWithoutBlock, DanglingEntry, FileExtent, FileReference,
                                          IndexedSession, LinkCount, LostFoundEntry, MisplacedEntry,
                                          MissingChunkReference, NonFileReferences, RefcountMismatch)
from store.backends.catalog.rows import BlockRow
from store.backends.catalog.sqlite import counters
from store.core import session_fields
from store.backends.catalog.sqlite.errors import translated
from store.backends.catalog.rows import LOST_BLOCK, LOST_HASH_PREFIX
from store.backends.catalog.sqlite.schema import FORMAT_VERSION, has_table, read_format_version

#: SQL condition true for a lost chunk ``c`` (see ``is_lost``).
LOST_CHUNK = f"(c.block_id = {LOST_BLOCK} AND length(c.hash) = {1 + 32})"
_BATCH = 500
_FILE = 32768          # S_IFREG
_DIR = 16384           # S_IFDIR


def is_lost(hash_: bytes, block_id: int) -> bool:
    """True for a chunk repair marked lost: no block, a 33-byte hash no SHA-256 can equal."""
    return block_id == LOST_BLOCK and len(hash_) == 33 and hash_[:1] == LOST_HASH_PREFIX


def in_batches(db: sqlite3.Connection, sql: str, ids: Iterable[int]) -> Iterator[tuple]:
    """The rows of ``sql`` (whose ``{ids}`` is replaced by a list of placeholders) over ``ids``
    taken a few hundred at a time."""
    ids = list(ids)
    for i in range(0, len(ids), _BATCH):
        part = ids[i:i + _BATCH]
        yield from db.execute(sql.format(ids=",".join("?" * len(part))), part)


@translated
class SqliteAuditChecks:
    """The read operations of ``SqliteAudit``."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def _one(self, sql: str, params=()):
        return self._db.execute(sql, params).fetchone()[0]

    # -- format and the database itself -------------------------------------------------
    def format_versions(self) -> tuple[int | None, int]:
        return read_format_version(self._db), FORMAT_VERSION

    def integrity_problems(self) -> list[str]:
        rows = [r[0] for r in self._db.execute("PRAGMA quick_check")]
        return [str(r) for r in rows if r != "ok" and not self._false_null(r)]

    def _false_null(self, message: str) -> bool:
        """SQLite 3.40 reports 'NULL value in t.c' for WITHOUT ROWID tables whose primary key
        lists columns in another order than the table (session_tags, session_topics) although
        no row holds a NULL. Such a line counts only when a query finds the NULL."""
        m = re.fullmatch(r"NULL value in (\w+)\.(\w+)", message)
        if not m:
            return False
        try:
            n = self._one(f'SELECT count(*) FROM "{m[1]}" WHERE "{m[2]}" IS NULL')
        except sqlite3.Error:
            return False
        return n == 0

    def counter_disagreements(self) -> dict[str, tuple[int, int]]:
        if (read_format_version(self._db) or 0) < counters.COUNTERS_FORMAT:
            return {}
        return counters.disagreements(self._db)

    # -- packs and blocks -----------------------------------------------------------------
    def dictionary_ids(self) -> set[int]:
        if not has_table(self._db, "dictionaries"):
            return set()
        return {r[0] for r in self._db.execute("SELECT id FROM dictionaries")}

    def block_totals(self) -> tuple[int, int]:
        return tuple(self._db.execute("SELECT count(*), coalesce(sum(length), 0) FROM blocks").fetchone())

    def blocks(self) -> Iterator[BlockRow]:
        for row in self._db.execute("SELECT id, pack_id, offset, length, raw_length, codec, dict_id FROM blocks "
                                    "ORDER BY pack_id, offset"):
            yield BlockRow(*row)

    def chunks_in_blocks(self, block_ids: Iterable[int]) -> list[int]:
        return [r[0] for r in in_batches(self._db, "SELECT id FROM chunks WHERE block_id IN ({ids})", block_ids)]

    def references_to(self, chunk_ids: Iterable[int]) -> Iterator[FileReference]:
        for row in in_batches(self._db, "SELECT f.ino, f.off, c.length FROM file_chunks f "
                                        "JOIN chunks c ON c.id = f.chunk_id WHERE f.chunk_id IN ({ids})", chunk_ids):
            yield FileReference(*row)

    # -- chunks ---------------------------------------------------------------------------
    def chunk_count(self) -> int:
        return self._one("SELECT count(*) FROM chunks")

    def chunks_without_block(self) -> Iterator[ChunkWithoutBlock]:
        for cid, h, block_id, refcount in self._db.execute(
                "SELECT c.id, c.hash, c.block_id, c.refcount FROM chunks c LEFT JOIN blocks b ON b.id = c.block_id "
                "WHERE b.id IS NULL"):
            if not is_lost(bytes(h), block_id):
                yield ChunkWithoutBlock(cid, bytes(h), block_id, refcount)

    def refcount_mismatches(self) -> Iterator[RefcountMismatch]:
        for cid, h, refcount, actual in self._db.execute(
                "SELECT c.id, c.hash, c.refcount, coalesce(f.n, 0) FROM chunks c "
                "LEFT JOIN (SELECT chunk_id, count(*) AS n FROM file_chunks GROUP BY chunk_id) f "
                "ON f.chunk_id = c.id WHERE c.refcount != coalesce(f.n, 0) "
                "OR (c.refcount = 0 AND c.unref_since IS NULL)"):
            yield RefcountMismatch(cid, bytes(h), refcount, actual)

    # -- file references ------------------------------------------------------------------
    def missing_chunk_references(self) -> Iterator[MissingChunkReference]:
        for row in self._db.execute(
                "SELECT f.ino, f.off, f.chunk_id FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id "
                "WHERE c.id IS NULL ORDER BY f.ino, f.off"):
            yield MissingChunkReference(*row)

    def non_file_references(self) -> Iterator[NonFileReferences]:
        for row in self._db.execute(
                "SELECT f.ino, i.mode, count(*) FROM file_chunks f LEFT JOIN inodes i ON i.id = f.ino "
                f"WHERE i.id IS NULL OR i.mode & 61440 != {_FILE} GROUP BY f.ino"):
            yield NonFileReferences(*row)

    def file_extents(self) -> Iterator[FileExtent]:
        for row in self._db.execute(
                "SELECT f.ino, f.off, c.length, i.size FROM file_chunks f JOIN inodes i ON i.id = f.ino "
                f"LEFT JOIN chunks c ON c.id = f.chunk_id WHERE i.mode & 61440 = {_FILE} ORDER BY f.ino, f.off"):
            yield FileExtent(*row)

    def file_count(self) -> int:
        return self._one(f"SELECT count(*) FROM inodes WHERE mode & 61440 = {_FILE}")

    # -- namespace ------------------------------------------------------------------------
    def dangling_entries(self) -> list[DanglingEntry]:
        return [DanglingEntry(parent, bytes(name), ino) for parent, name, ino in self._db.execute(
            "SELECT d.parent, d.name, d.ino FROM dentries d LEFT JOIN inodes i ON i.id = d.ino WHERE i.id IS NULL")]

    def misplaced_entries(self) -> list[MisplacedEntry]:
        return [MisplacedEntry(parent, bytes(name), ino, mode) for parent, name, ino, mode in self._db.execute(
            "SELECT d.parent, d.name, d.ino, p.mode FROM dentries d LEFT JOIN inodes p ON p.id = d.parent "
            f"WHERE p.id IS NULL OR p.mode & 61440 != {_DIR}")]

    def link_counts(self) -> Iterator[LinkCount]:
        subdirs = dict(self._db.execute(
            "SELECT d.parent, count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
            f"WHERE c.mode & 61440 = {_DIR} GROUP BY d.parent"))
        for ino, mode, nlink, names in self._db.execute(
                "SELECT i.id, i.mode, i.nlink, count(d.ino) FROM inodes i LEFT JOIN dentries d ON d.ino = i.id "
                "GROUP BY i.id"):
            yield LinkCount(ino, mode, nlink, names, subdirs.get(ino, 0))

    # -- sessions -------------------------------------------------------------------------
    def indexed_sessions(self) -> dict[str, IndexedSession]:
        tags, topics = defaultdict(list), defaultdict(list)
        for sid, tag in self._db.execute("SELECT session_id, tag FROM session_tags ORDER BY session_id, tag"):
            tags[sid].append(tag)
        for sid, topic in self._db.execute("SELECT session_id, topic_id FROM session_topics "
                                           "ORDER BY session_id, topic_id"):
            topics[sid].append(topic)
        return {sid: IndexedSession(sid, dir_ino, meta_size, session_fields.SessionFields(
                    *fields, tags=tuple(tags.get(sid, ())), topic_ids=tuple(topics.get(sid, ()))))
                for sid, dir_ino, meta_size, *fields in self._db.execute(
                    "SELECT id, dir_ino, meta_size, name, status, start_time, end_time, category, version, "
                    "updated_at FROM sessions")}

    # -- lost+found -----------------------------------------------------------------------
    def lost_references(self, ino: int | None = None) -> Iterator[FileReference]:
        only = "" if ino is None else "AND f.ino = ?"
        for row in self._db.execute(
                "SELECT f.ino, f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                f"WHERE {LOST_CHUNK} {only}", () if ino is None else (ino,)):
            yield FileReference(*row)

    def lost_found(self) -> list[LostFoundEntry]:
        if not has_table(self._db, "lost_found"):
            return []
        return [LostFoundEntry(ino, path, reason, json.loads(ranges), found_at)
                for ino, path, reason, ranges, found_at in self._db.execute(
                    "SELECT ino, path, reason, ranges, found_at FROM lost_found ORDER BY id")]

    # -- re-checks ------------------------------------------------------------------------
    def pack_listed(self, pack_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM packs WHERE id = ?", (pack_id,)).fetchone() is not None

    def pack_has_blocks(self, pack_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM blocks WHERE pack_id = ? LIMIT 1", (pack_id,)).fetchone() is not None

