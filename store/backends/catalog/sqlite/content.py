"""The ``content`` domain on SQLite: tables ``file_chunks``, ``chunks``, ``blocks``, ``packs``."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable

from ..content import ChunkGoneError, Content
from ..rows import BlockRow, ChunkInBlock, ChunkLocation
from store.core.errors import IntegrityError
from store.core.rewrite import Extent
from store.backends.catalog.sqlite.errors import translated

_ID_TABLES = {"block": "blocks", "chunk": "chunks", "pack": "packs"}
_IN_BATCH = 500          # ids per ``IN (...)`` list, well under SQLite's parameter limit


def release_content(db: sqlite3.Connection, ino: int, now: int) -> None:
    """Drop every chunk reference of ``ino`` (its content becomes empty)."""
    db.execute(
        "UPDATE chunks SET refcount = refcount - r.n, "
        "unref_since = CASE WHEN refcount - r.n = 0 THEN ? ELSE unref_since END "
        "FROM (SELECT chunk_id, count(*) AS n FROM file_chunks WHERE ino = ? GROUP BY chunk_id) AS r "
        "WHERE chunks.id = r.chunk_id", (now, ino))
    db.execute("DELETE FROM file_chunks WHERE ino = ?", (ino,))


@translated
class SqliteContent(Content):
    """``Content`` over one connection (see ``store.backends.catalog.content``)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    # -- reads -------------------------------------------------------------------------
    def extents(self, ino: int) -> list[Extent]:
        rows = self._db.execute(
            "SELECT f.off, c.length, f.chunk_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
            "WHERE f.ino = ? ORDER BY f.off", (ino,)).fetchall()
        return [Extent(*r) for r in rows]

    def locations(self, ino: int, start: int, end: int, max_chunk: int) -> list[ChunkLocation]:
        rows = self._db.execute(
            "SELECT f.off, c.length, f.chunk_id, c.hash, c.block_id, c.block_off, "
            'b.pack_id, b."offset", b.length, b.raw_length, b.codec, b.dict_id '
            "FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id LEFT JOIN blocks b ON b.id = c.block_id "
            "WHERE f.ino = ? AND f.off > ? AND f.off < ? ORDER BY f.off",
            (ino, start - max_chunk, end)).fetchall()
        for r in rows:
            if r[1] is None:
                raise IntegrityError(f"file inode {ino} refers to chunk {r[2]} at offset {r[0]}, "
                                     "which the catalog does not have")
        return [ChunkLocation(r[0], r[1], r[2], bytes(r[3]), r[4], r[5],
                              None if r[6] is None else BlockRow(r[4], *r[6:]))
                for r in rows if r[0] + r[1] > start]

    def chunks(self, extents: Iterable[tuple[int, int]]) -> list[ChunkLocation] | None:
        extents = list(extents)
        found = {r[0]: r for r in self._db.execute(
            "SELECT id, length, hash, block_id, block_off FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([cid for _, cid in extents]),))}
        try:
            return [ChunkLocation(off, found[cid][1], cid, bytes(found[cid][2]), found[cid][3], found[cid][4])
                    for off, cid in extents]
        except KeyError:
            return None

    def block(self, block_id: int) -> BlockRow | None:
        row = self._db.execute(
            "SELECT id, pack_id, offset, length, raw_length, codec, dict_id FROM blocks WHERE id = ?",
            (block_id,)).fetchone()
        return BlockRow(*row) if row else None

    def chunks_in_block(self, block_id: int) -> list[ChunkInBlock]:
        return [ChunkInBlock(cid, bytes(digest), off, n) for cid, digest, off, n in self._db.execute(
            "SELECT id, hash, block_off, length FROM chunks WHERE block_id = ? ORDER BY block_off", (block_id,))]

    def chunk_by_hash(self, digest: bytes) -> tuple[int, int] | None:
        row = self._db.execute("SELECT id, length FROM chunks WHERE hash = ?", (digest,)).fetchone()
        return (row[0], row[1]) if row else None

    def chunks_by_hash(self, digests: list[bytes]) -> dict[bytes, tuple[int, int]]:
        found = {}
        for i in range(0, len(digests), _IN_BATCH):
            part = digests[i:i + _IN_BATCH]
            found.update((bytes(h), (cid, n)) for h, cid, n in self._db.execute(
                f"SELECT hash, id, length FROM chunks WHERE hash IN ({','.join('?' * len(part))})", part))
        return found

    def data_bytes(self, inos: list[int]) -> dict[int, int]:
        found = dict.fromkeys(inos, 0)
        for i in range(0, len(inos), _IN_BATCH):
            part = inos[i:i + _IN_BATCH]
            found.update(self._db.execute(
                "SELECT f.ino, sum(c.length) FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                f"WHERE f.ino IN ({','.join('?' * len(part))}) GROUP BY f.ino", part))
        return found


    def packs(self) -> dict[int, tuple[int, bool]]:
        rows = self._db.execute("SELECT id, size, sealed FROM packs")
        return {pid: (size, bool(sealed)) for pid, size, sealed in rows}

    # -- writes ------------------------------------------------------------------------
    def reserve_ids(self, kind: str, count: int, floor: int = 1) -> int:
        table = _ID_TABLES[kind]
        key = f"next_{kind}_id"
        stored = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        used = self._db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        first = max(int(stored[0]) if stored else 1, used + 1, floor)
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, first + count))
        return first

    def seal_packs(self, pack_ids: list[int]) -> None:
        self._db.executemany("UPDATE packs SET sealed = 1 WHERE id = ?", [(p,) for p in pack_ids])

    def record_packs(self, new_packs: list[int], pack_ends: dict[int, int], open_pack: int | None,
                     now: int) -> None:
        self._db.executemany("INSERT OR IGNORE INTO packs (id, size, created) VALUES (?, 0, ?)",
                             [(pid, now) for pid in new_packs])
        self._db.executemany("UPDATE packs SET size = ? WHERE id = ?", [(end, pid) for pid, end in pack_ends.items()])
        self._db.execute("UPDATE packs SET sealed = 1 WHERE sealed = 0 AND id != ?",
                         (-1 if open_pack is None else open_pack,))

    def add_blocks(self, rows: list[tuple]) -> None:
        self._db.executemany("INSERT INTO blocks (id, pack_id, offset, length, raw_length, codec, dict_id, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def add_chunks(self, rows: list[tuple[int, bytes, int, int, int]], now: int) -> None:
        self._db.executemany("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                             "VALUES (?, ?, ?, ?, ?, 0, ?)", [(*c, now) for c in rows])

    def release_content(self, ino: int, now: int) -> None:
        release_content(self._db, ino, now)

    def commit_file(self, ino: int, extents: list[tuple[int, int, int]], *, size: int, mtime_ns: int,
                    ctime_ns: int, now: int, content_seq: int | None = None) -> bool:
        if self._db.execute("SELECT 1 FROM inodes WHERE id = ?", (ino,)).fetchone() is None:
            return False
        release_content(self._db, ino, now)
        self._db.executemany("INSERT INTO file_chunks (ino, off, chunk_id) VALUES (?, ?, ?)",
                             [(ino, off, cid) for off, _, cid in extents])
        counts = Counter(cid for _, _, cid in extents)
        updated = self._db.executemany("UPDATE chunks SET refcount = refcount + ?, unref_since = NULL WHERE id = ?",
                                       [(n, cid) for cid, n in counts.items()]).rowcount
        if counts and updated != len(counts):
            raise ChunkGoneError(f"inode {ino}: {len(counts) - updated} of its chunks no longer exist")
        self._db.execute("UPDATE inodes SET size = ?, mtime_ns = ?, ctime_ns = max(ctime_ns, ?), "
                         "content_seq = coalesce(?, content_seq) WHERE id = ?",
                         (size, mtime_ns, ctime_ns, content_seq, ino))
        return True
