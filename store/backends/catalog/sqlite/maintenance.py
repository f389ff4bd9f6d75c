"""SQLite implementation of the maintenance operations (``store.backends.catalog.maintenance``).

The ``recompressed`` and ``dictionaries`` tables may be missing from an older catalog opened
read-only (``schema.ensure_maintenance_tables`` adds them at a writable open): reads then
see them empty.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Iterable

from store.core import codec
from store.backends.catalog.maintenance import AgedBlock, DictionaryInfo, Maintenance, PackLiveness
from .errors import translated
from .schema import INCREMENTAL_VACUUM, has_table

#: Upper bound of a creation time: "created before ANY_TIME" is every block.
ANY_TIME = 1 << 62
AGED_BLOCK_COLUMNS = "b.created, b.id, b.pack_id, b.offset, b.length, b.raw_length, b.codec, b.dict_id"
#: Condition on chunks ``c``: unreferenced since before the parameter (reclaim deletes these).
EXPIRED = "c.refcount <= 0 AND c.unref_since IS NOT NULL AND c.unref_since <= ?"


def _aged(rows) -> list[AgedBlock]:
    return [AgedBlock(*r) for r in rows]


# Blocks of one directory's tree that may be merged: small, cold, not yet handled, every chunk
# referenced by one file only, which does not have the name that stays alone.
_MERGEABLE_SQL = """
WITH RECURSIVE tree(ino) AS (
    SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree ON d.parent = tree.ino
),
owned AS (
    SELECT c.block_id AS bid, min(f.ino) AS ino FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
    WHERE f.ino IN (SELECT ino FROM tree) GROUP BY c.block_id
)
SELECT {columns}
FROM owned o JOIN blocks b ON b.id = o.bid
WHERE b.raw_length <= ? AND b.raw_length > 0 AND b.created <= ? {unhandled}
  AND NOT EXISTS (SELECT 1 FROM chunks c2 JOIN file_chunks f2 ON f2.chunk_id = c2.id
                  WHERE c2.block_id = b.id AND f2.ino != o.ino)
  AND NOT EXISTS (SELECT 1 FROM dentries d WHERE d.ino = o.ino AND d.name = ?)
ORDER BY o.ino, b.id
"""


@translated
class SqliteMaintenance(Maintenance):
    """Maintenance operations over one connection (a view's)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def _unhandled(self) -> str:
        """Condition on blocks ``b``: recompression has not handled it."""
        if not has_table(self._db, "recompressed"):
            return ""
        return "AND NOT EXISTS (SELECT 1 FROM recompressed r WHERE r.block_id = b.id)"

    def _one(self, sql: str, params=()):
        return self._db.execute(sql, params).fetchone()

    # -- garbage collection ---------------------------------------------------------------
    def stored_bytes(self) -> int:
        return self._one("SELECT coalesce(sum(size), 0) FROM packs")[0]

    def reclaimable(self, before: int) -> tuple[int, int]:
        return tuple(self._one(f"SELECT count(*), coalesce(sum(length), 0) FROM chunks c WHERE {EXPIRED}",
                               (before,)))

    def reclaim_chunks(self, before: int, limit: int) -> list[tuple[int, int]]:
        rows = self._db.execute(f"SELECT id, length FROM chunks c WHERE {EXPIRED} LIMIT ?",
                                (before, limit)).fetchall()
        self._db.executemany("DELETE FROM chunks WHERE id = ?", [(r[0],) for r in rows])
        return [(cid, length) for cid, length in rows]

    def drop_blocks_without_chunks(self) -> list[int]:
        dead = [(r[0],) for r in self._db.execute(
            "SELECT id FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.block_id = b.id)")]
        self._db.executemany("DELETE FROM blocks WHERE id = ?", dead)
        if has_table(self._db, "recompressed"):
            self._db.executemany("DELETE FROM recompressed WHERE block_id = ?", dead)
        return [b for b, in dead]

    def blocks_emptied_by_reclaim(self, before: int) -> int:
        return self._one("SELECT count(*) FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                         f"WHERE c.block_id = b.id AND NOT ({EXPIRED}))", (before,))[0]

    def drop_unused_dictionaries(self) -> list[int]:
        if not has_table(self._db, "dictionaries"):
            return []
        unused = [(r[0],) for r in self._db.execute(
            "SELECT id FROM dictionaries d WHERE id < (SELECT max(id) FROM dictionaries) "
            "AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.dict_id = d.id AND b.codec = ?)",
            (codec.CODEC_ZSTD_DICT,))]
        self._db.executemany("DELETE FROM dictionaries WHERE id = ?", unused)
        return [d for d, in unused]

    def drop_empty_packs(self, pack_ids: Iterable[int] | None = None, *, keep: int | None = None) -> list[int]:
        if pack_ids is None:
            pack_ids = [r[0] for r in self._db.execute("SELECT id FROM packs")]
        return [pid for pid in sorted(set(pack_ids)) if pid != keep and self._db.execute(
            "DELETE FROM packs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM blocks WHERE pack_id = ?)",
            (pid, pid)).rowcount]

    def pack_liveness(self, reencode_below: float, reclaimed_before: int | None = None) -> list[PackLiveness]:
        if reclaimed_before is None:
            chunk_filter, params = "", ()
        else:
            chunk_filter, params = f"WHERE NOT ({EXPIRED})", (reclaimed_before,)
        rows = self._db.execute(
            "SELECT p.id, p.size, coalesce(sum(CASE WHEN coalesce(l.live, 0) >= b.raw_length * ? THEN b.length "
            "ELSE b.length * coalesce(l.live, 0) * 1.0 / max(b.raw_length, 1) END), 0), "
            "coalesce(sum(CASE WHEN coalesce(l.live, 0) >= b.raw_length THEN b.length "
            "ELSE b.length * coalesce(l.live, 0) * 1.0 / b.raw_length END), 0), p.created "
            "FROM packs p LEFT JOIN blocks b ON b.pack_id = p.id "
            f"LEFT JOIN (SELECT block_id, sum(length) AS live FROM chunks c {chunk_filter} GROUP BY block_id) l "
            "ON l.block_id = b.id GROUP BY p.id ORDER BY p.id", (reencode_below, *params)).fetchall()
        return [PackLiveness(*r) for r in rows]

    def release_free_pages(self) -> int:
        """Catalogs made since auto-vacuum (``schema.create_tables``) truncate their free pages;
        older ones keep them for later writes (switching needs a VACUUM, which may renumber
        ``dentries`` rowids: readdir cookies)."""
        if self._one("PRAGMA auto_vacuum")[0] != INCREMENTAL_VACUUM:
            return 0
        free = self._one("PRAGMA freelist_count")[0]
        for _ in range(free):           # the sqlite3 module steps it once: one page a statement
            self._db.execute("PRAGMA incremental_vacuum")
        return free - self._one("PRAGMA freelist_count")[0]

    def blocks_in_pack(self, pack_id: int) -> list[AgedBlock]:
        return _aged(self._db.execute(f"SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE b.pack_id = ? "
                                      "ORDER BY b.offset", (pack_id,)))

    def relocate_blocks(self, frames: Iterable[AgedBlock]) -> None:
        self._db.executemany("UPDATE blocks SET pack_id = ?, offset = ?, length = ?, codec = ?, dict_id = ? "
                             "WHERE id = ?", [(b.pack_id, b.offset, b.length, b.codec, b.dict_id, b.id)
                                              for b in frames])

    def _insert_block(self, b: AgedBlock) -> None:
        self._db.execute("INSERT INTO blocks (id, pack_id, offset, length, raw_length, codec, dict_id, created) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (b.id, b.pack_id, b.offset, b.length, b.raw_length, b.codec, b.dict_id, b.created))

    def replace_block(self, old_id: int, new: AgedBlock, chunk_offsets: Iterable[tuple[int, int]]) -> None:
        self._insert_block(new)
        self._db.executemany("UPDATE chunks SET block_id = ?, block_off = ? WHERE id = ?",
                             [(new.id, boff, cid) for cid, boff in chunk_offsets])
        self._db.execute("DELETE FROM blocks WHERE id = ?", (old_id,))
        if has_table(self._db, "recompressed"):
            self._db.execute("UPDATE recompressed SET block_id = ? WHERE block_id = ?", (new.id, old_id))

    # -- recompression --------------------------------------------------------------------
    def pending(self, before: int | None) -> tuple[int, int]:
        return tuple(self._one("SELECT count(*), coalesce(sum(length), 0) FROM blocks b WHERE created <= ? "
                               + self._unhandled(), (ANY_TIME if before is None else before,)))

    def recompress_candidates(self, before: int, limit: int,
                              after: tuple[int, int] = (-1, -1)) -> list[AgedBlock]:
        return _aged(self._db.execute(
            f"SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE b.created <= ? {self._unhandled()} "
            "AND (b.created, b.id) > (?, ?) ORDER BY b.created, b.id LIMIT ?", (before, *after, limit)))

    def files_of_block(self, block_id: int) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT f.ino FROM chunks c JOIN file_chunks f "
                                               "ON f.chunk_id = c.id WHERE c.block_id = ?", (block_id,))]

    def mergeable_blocks(self, directory: int, max_raw: int, before: int, alone: bytes) -> list[AgedBlock]:
        sql = _MERGEABLE_SQL.format(columns=AGED_BLOCK_COLUMNS, unhandled=self._unhandled())
        return _aged(self._db.execute(sql, (directory, max_raw, before, alone)))

    def merge_blocks(self, new: AgedBlock, sources: Iterable[tuple[int, int]]) -> None:
        self._insert_block(new)
        for bid, base in sources:
            self._db.execute("UPDATE chunks SET block_id = ?, block_off = block_off + ? WHERE block_id = ?",
                             (new.id, base, bid))
            self._db.execute("DELETE FROM blocks WHERE id = ?", (bid,))
            self._db.execute("DELETE FROM recompressed WHERE block_id = ?", (bid,))

    def mark_recompressed(self, blocks: Iterable[tuple[int, int]], level: int, done_at: int) -> None:
        self._db.executemany("INSERT OR REPLACE INTO recompressed (block_id, level, length_before, done_at) "
                             "VALUES (?, ?, ?, ?)", [(bid, level, length, done_at) for bid, length in blocks])

    def recompressed_level(self, block_id: int) -> int | None:
        if not has_table(self._db, "recompressed"):
            return None
        row = self._one("SELECT level FROM recompressed WHERE block_id = ?", (block_id,))
        return row[0] if row else None

    def _small(self, max_raw: int, named: bytes | None) -> tuple[str, tuple]:
        """Condition on blocks ``b`` and its parameters (see ``small_blocks``)."""
        cond = "b.raw_length <= ? AND b.raw_length > 0"
        if named is None:
            return cond, (max_raw,)
        return (cond + " AND EXISTS (SELECT 1 FROM chunks c JOIN file_chunks f ON f.chunk_id = c.id "
                       "JOIN dentries d ON d.ino = f.ino WHERE c.block_id = b.id AND d.name = ?)", (max_raw, named))

    def small_blocks(self, max_raw: int, named: bytes | None = None) -> list[AgedBlock]:
        cond, params = self._small(max_raw, named)
        return _aged(self._db.execute(f"SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE {cond} "
                                      "ORDER BY b.created DESC", params))

    def count_small_blocks(self, max_raw: int, named: bytes | None = None) -> int:
        cond, params = self._small(max_raw, named)
        return self._one(f"SELECT count(*) FROM blocks b WHERE {cond}", params)[0]

    # -- zstd dictionaries ----------------------------------------------------------------
    def dictionary(self, dict_id: int) -> bytes | None:
        if not has_table(self._db, "dictionaries"):
            return None
        row = self._one("SELECT data FROM dictionaries WHERE id = ?", (dict_id,))
        return bytes(row[0]) if row else None

    def latest_dictionary(self) -> DictionaryInfo | None:
        if not has_table(self._db, "dictionaries"):
            return None
        row = self._one("SELECT id, samples, sample_bytes, small_blocks FROM dictionaries ORDER BY id DESC LIMIT 1")
        return DictionaryInfo(*row) if row else None

    def next_dictionary_id(self) -> int:
        if not has_table(self._db, "dictionaries"):
            return 1
        return self._one("SELECT coalesce(max(id), 0) + 1 FROM dictionaries")[0]

    def add_dictionary(self, dict_id: int, data: bytes, samples: int, sample_bytes: int, small_blocks: int) -> None:
        self._db.execute("INSERT INTO dictionaries (id, created, data, samples, sample_bytes, small_blocks) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (dict_id, time.time_ns(), data, samples, sample_bytes, small_blocks))
