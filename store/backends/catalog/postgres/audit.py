"""The audit domain (``store.backends.catalog.audit`` documents each operation) on PostgreSQL:
the checks for ``verify`` and the fixes of ``--repair``."""

from __future__ import annotations

import hashlib
import json
import stat
from collections import defaultdict
from typing import Iterable, Iterator

import psycopg

from store.backends.catalog.audit import (Audit, ChunkWithoutBlock, DanglingEntry, FileExtent, FileReference,
                                          IndexedSession, LinkCount, LostFoundEntry, MisplacedEntry,
                                          MissingChunkReference, NonFileReferences, RefcountMismatch)
from store.backends.catalog.rows import LOST_BLOCK, LOST_HASH_PREFIX, BlockRow
from store.core import session_fields
from . import counters
from .domain import Domain
from .errors import translated
from .schema import FORMAT_VERSION

#: SQL condition true for a lost chunk ``c`` (see ``is_lost``).
LOST_CHUNK = f"(c.block_id = {LOST_BLOCK} AND length(c.hash) = {1 + 32})"
_FILE = 32768          # S_IFREG
_DIR = 16384           # S_IFDIR


def is_lost(hash_: bytes, block_id: int) -> bool:
    """True for a chunk repair marked lost: no block, a 33-byte hash no SHA-256 can equal."""
    return block_id == LOST_BLOCK and len(hash_) == 33 and hash_[:1] == LOST_HASH_PREFIX


@translated
class PostgresAudit(Domain, Audit):
    """Whole-catalog checks and repairs over one view."""

    # -- format and the database itself -------------------------------------------------
    def format_versions(self) -> tuple[int | None, int]:
        row = self._one("SELECT value FROM meta WHERE key = 'format_version'")
        return (int(row[0]) if row else None), FORMAT_VERSION

    def integrity_problems(self) -> list[str]:
        """Checks every index of the catalog's tables with ``amcheck`` when the database has
        that extension (``CREATE EXTENSION amcheck``, by its owner); none otherwise: the
        server checksums and WAL-protects its pages, which SQLite leaves to this check."""
        if self._one("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'") is None:
            return []
        problems, guard = [], self._view.in_transaction      # a failed check must not end the snapshot
        for (index,) in self._x("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE a.amname = 'btree' AND n.nspname = current_schema() ORDER BY 1").fetchall():
            if guard:
                self._x("SAVEPOINT amcheck")
            try:
                self._x("SELECT bt_index_check(%s::regclass)", (index,))
            except psycopg.InternalError as exc:      # amcheck reports damage as XX errors
                problems.append(f"index {index}: {exc}")
                if guard:
                    self._x("ROLLBACK TO SAVEPOINT amcheck")
            if guard:
                self._x("RELEASE SAVEPOINT amcheck")
        return problems

    def counter_disagreements(self) -> dict[str, tuple[int, int]]:
        return counters.disagreements(self._view.conn)

    # -- packs and blocks -----------------------------------------------------------------
    def dictionary_ids(self) -> set[int]:
        return {r[0] for r in self._x("SELECT id FROM dictionaries")}

    def block_totals(self) -> tuple[int, int]:
        return tuple(self._one("SELECT count(*), coalesce(sum(length), 0)::bigint FROM blocks"))

    def blocks(self) -> Iterator[BlockRow]:
        for row in self._x('SELECT id, pack_id, "offset", length, raw_length, codec, dict_id FROM blocks '
                           'ORDER BY pack_id, "offset"'):
            yield BlockRow(*row)

    def chunks_in_blocks(self, block_ids: Iterable[int]) -> list[int]:
        return [r[0] for r in self._x("SELECT id FROM chunks WHERE block_id = ANY(%s)", (list(block_ids),))]

    def references_to(self, chunk_ids: Iterable[int]) -> Iterator[FileReference]:
        for row in self._x("SELECT f.ino, f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                           "WHERE f.chunk_id = ANY(%s)", (list(chunk_ids),)):
            yield FileReference(*row)

    # -- chunks ---------------------------------------------------------------------------
    def chunk_count(self) -> int:
        return self._one("SELECT count(*) FROM chunks")[0]

    def chunks_without_block(self) -> Iterator[ChunkWithoutBlock]:
        for cid, h, block_id, refcount in self._x(
                "SELECT c.id, c.hash, c.block_id, c.refcount FROM chunks c LEFT JOIN blocks b ON b.id = c.block_id "
                "WHERE b.id IS NULL"):
            if not is_lost(h, block_id):
                yield ChunkWithoutBlock(cid, h, block_id, refcount)

    def refcount_mismatches(self) -> Iterator[RefcountMismatch]:
        for row in self._x(
                "SELECT c.id, c.hash, c.refcount, coalesce(f.n, 0) FROM chunks c "
                "LEFT JOIN (SELECT chunk_id, count(*) AS n FROM file_chunks GROUP BY chunk_id) f "
                "ON f.chunk_id = c.id WHERE c.refcount <> coalesce(f.n, 0) "
                "OR (c.refcount = 0 AND c.unref_since IS NULL)"):
            yield RefcountMismatch(*row)

    # -- file references ------------------------------------------------------------------
    def missing_chunk_references(self) -> Iterator[MissingChunkReference]:
        for row in self._x("SELECT f.ino, f.off, f.chunk_id FROM file_chunks f LEFT JOIN chunks c "
                           "ON c.id = f.chunk_id WHERE c.id IS NULL ORDER BY f.ino, f.off"):
            yield MissingChunkReference(*row)

    def non_file_references(self) -> Iterator[NonFileReferences]:
        for row in self._x("SELECT f.ino, i.mode, count(*) FROM file_chunks f LEFT JOIN inodes i ON i.id = f.ino "
                           f"WHERE i.id IS NULL OR i.mode & 61440 <> {_FILE} GROUP BY f.ino, i.mode"):
            yield NonFileReferences(*row)

    def file_extents(self) -> Iterator[FileExtent]:
        for row in self._x("SELECT f.ino, f.off, c.length, i.size FROM file_chunks f JOIN inodes i ON i.id = f.ino "
                           f"LEFT JOIN chunks c ON c.id = f.chunk_id WHERE i.mode & 61440 = {_FILE} "
                           "ORDER BY f.ino, f.off"):
            yield FileExtent(*row)

    def file_count(self) -> int:
        return self._one(f"SELECT count(*) FROM inodes WHERE mode & 61440 = {_FILE}")[0]

    # -- namespace ------------------------------------------------------------------------
    def dangling_entries(self) -> list[DanglingEntry]:
        return [DanglingEntry(*r) for r in self._x(
            "SELECT d.parent, d.name, d.ino FROM dentries d LEFT JOIN inodes i ON i.id = d.ino WHERE i.id IS NULL")]

    def misplaced_entries(self) -> list[MisplacedEntry]:
        return [MisplacedEntry(*r) for r in self._x(
            "SELECT d.parent, d.name, d.ino, p.mode FROM dentries d LEFT JOIN inodes p ON p.id = d.parent "
            f"WHERE p.id IS NULL OR p.mode & 61440 <> {_DIR}")]

    def link_counts(self) -> Iterator[LinkCount]:
        subdirs = dict(self._x("SELECT d.parent, count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
                               f"WHERE c.mode & 61440 = {_DIR} GROUP BY d.parent").fetchall())
        for ino, mode, nlink, names in self._x(
                "SELECT i.id, i.mode, i.nlink, count(d.ino) FROM inodes i LEFT JOIN dentries d ON d.ino = i.id "
                "GROUP BY i.id"):
            yield LinkCount(ino, mode, nlink, names, subdirs.get(ino, 0))

    # -- sessions -------------------------------------------------------------------------
    def indexed_sessions(self) -> dict[str, IndexedSession]:
        tags, topics = defaultdict(list), defaultdict(list)
        for sid, tag in self._x('SELECT session_id, tag FROM session_tags ORDER BY session_id, tag COLLATE "C"'):
            tags[sid].append(tag)
        for sid, topic in self._x('SELECT session_id, topic_id FROM session_topics '
                                  'ORDER BY session_id, topic_id COLLATE "C"'):
            topics[sid].append(topic)
        return {sid: IndexedSession(sid, dir_ino, meta_size, session_fields.SessionFields(
                    *fields, tags=tuple(tags.get(sid, ())), topic_ids=tuple(topics.get(sid, ()))))
                for sid, dir_ino, meta_size, *fields in self._x(
                    "SELECT id, dir_ino, meta_size, name, status, start_time, end_time, category, version, "
                    "updated_at FROM sessions")}

    # -- lost+found -----------------------------------------------------------------------
    def lost_references(self, ino: int | None = None) -> Iterator[FileReference]:
        only = "" if ino is None else "AND f.ino = %s"
        for row in self._x("SELECT f.ino, f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                           f"WHERE {LOST_CHUNK} {only}", () if ino is None else (ino,)):
            yield FileReference(*row)

    def lost_found(self) -> list[LostFoundEntry]:
        return [LostFoundEntry(ino, path, reason, json.loads(ranges), found_at)
                for ino, path, reason, ranges, found_at in self._x(
                    "SELECT ino, path, reason, ranges, found_at FROM lost_found ORDER BY id")]

    # -- re-checks ------------------------------------------------------------------------
    def pack_listed(self, pack_id: int) -> bool:
        return self._one("SELECT 1 FROM packs WHERE id = %s", (pack_id,)) is not None

    def pack_has_blocks(self, pack_id: int) -> bool:
        return self._one("SELECT 1 FROM blocks WHERE pack_id = %s LIMIT 1", (pack_id,)) is not None

    # -- repairs --------------------------------------------------------------------------
    def drop_references(self, ino: int) -> int:
        n = self._x("DELETE FROM file_chunks WHERE ino = %s", (ino,)).rowcount
        if n:
            self._touched.contents.add(ino)
        return n

    def chunk_exists(self, chunk_id: int) -> bool:
        return self._one("SELECT 1 FROM chunks WHERE id = %s", (chunk_id,)) is not None

    def drop_reference(self, ino: int, off: int, chunk_id: int) -> None:
        if self._x("DELETE FROM file_chunks WHERE ino = %s AND off = %s AND chunk_id = %s",
                   (ino, off, chunk_id)).rowcount:
            self._touched.contents.add(ino)

    def tombstone_chunk(self, chunk_id: int, length: int, at_ns: int) -> None:
        tomb = LOST_HASH_PREFIX + hashlib.sha256(b"sessionfs lost chunk %d" % chunk_id).digest()
        self._x("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                "VALUES (%s, %s, %s, %s, 0, 0, %s)", (chunk_id, tomb, max(0, length), LOST_BLOCK, at_ns))

    def mark_chunk_lost(self, chunk_id: int) -> list[FileReference]:
        row = self._one("SELECT hash, block_id, length FROM chunks WHERE id = %s", (chunk_id,))
        if row is None or is_lost(row[0], row[1]):
            return []
        refs = self._x("SELECT ino, off FROM file_chunks WHERE chunk_id = %s", (chunk_id,)).fetchall()
        if not refs:
            self._x("DELETE FROM chunks WHERE id = %s", (chunk_id,))
            self._touched.everything = True
            return []
        self._x("UPDATE chunks SET hash = %s, block_id = %s, block_off = 0 WHERE id = %s",
                (LOST_HASH_PREFIX + row[0][:32], LOST_BLOCK, chunk_id))
        return [FileReference(ino, off, row[2]) for ino, off in refs]

    def drop_block(self, block_id: int) -> bool:
        if self._one("SELECT 1 FROM chunks WHERE block_id = %s LIMIT 1", (block_id,)):
            return False
        if not self._x("DELETE FROM blocks WHERE id = %s", (block_id,)).rowcount:
            return False
        self._x("DELETE FROM recompressed WHERE block_id = %s", (block_id,))
        return True

    def drop_pack(self, pack_id: int) -> bool:
        if self._one("SELECT 1 FROM blocks WHERE pack_id = %s LIMIT 1", (pack_id,)):
            return False
        return self._x("DELETE FROM packs WHERE id = %s", (pack_id,)).rowcount > 0

    def shrink_pack(self, pack_id: int, size: int) -> None:
        self._x("UPDATE packs SET size = %s WHERE id = %s AND size > %s", (size, pack_id, size))

    def record_lost_found(self, ino: int, path: str | None, reason: str, ranges: list[tuple[int, int]],
                          at_ns: int) -> None:
        self._x("INSERT INTO lost_found (ino, path, reason, ranges, found_at) VALUES (%s, %s, %s, %s, %s)",
                (ino, path, reason, json.dumps(ranges), at_ns))

    def drop_entry(self, parent: int, name: bytes) -> None:
        self._x("DELETE FROM dentries WHERE parent = %s AND name = %s", (parent, name))

    def recount_refcounts(self, at_ns: int) -> int:
        fixed = self._x(
            "UPDATE chunks SET refcount = coalesce(f.n, 0) FROM chunks c0 "
            "LEFT JOIN (SELECT chunk_id, count(*) AS n FROM file_chunks GROUP BY chunk_id) f ON f.chunk_id = c0.id "
            "WHERE chunks.id = c0.id AND chunks.refcount <> coalesce(f.n, 0)").rowcount
        return fixed + self._x("UPDATE chunks SET unref_since = %s WHERE refcount = 0 AND unref_since IS NULL",
                               (at_ns,)).rowcount

    def recount_nlinks(self, inos: Iterable[int]) -> int:
        changed = 0
        for ino in inos:
            row = self._one("SELECT mode, nlink FROM inodes WHERE id = %s", (ino,))
            if row is None:
                continue
            if stat.S_ISDIR(row[0]):
                expected = 2 + self._one("SELECT count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
                                         f"WHERE d.parent = %s AND c.mode & 61440 = {_DIR}", (ino,))[0]
            else:
                expected = self._one("SELECT count(*) FROM dentries WHERE ino = %s", (ino,))[0]
            if expected and row[1] != expected:
                self._x("UPDATE inodes SET nlink = %s WHERE id = %s", (expected, ino))
                self._touched.inodes.add(ino)
                changed += 1
        return changed

    def drop_session_rows(self, session_id: str) -> None:
        for table, column in (("session_tags", "session_id"), ("session_topics", "session_id"), ("sessions", "id")):
            self._x(f"DELETE FROM {table} WHERE {column} = %s", (session_id,))

    def prune_lost_found(self) -> int:
        return self._x("DELETE FROM lost_found WHERE ino NOT IN (SELECT f.ino FROM file_chunks f JOIN chunks c "
                       f"ON c.id = f.chunk_id WHERE {LOST_CHUNK})").rowcount

    def store_recounted_totals(self) -> None:
        counters.store_sums(self._view.conn, counters.recount(self._view.conn))
