"""The maintenance operations (``store.backends.catalog.maintenance``) on PostgreSQL.

Every catalog made here has the maintenance tables, so no read checks for them. Sums are
cast back to ``bigint`` (PostgreSQL sums a bigint column as numeric).
"""

from __future__ import annotations

import time
from typing import Iterable

from store.core import codec
from store.backends.catalog.maintenance import AgedBlock, DictionaryInfo, Maintenance, PackLiveness
from .domain import Domain
from .errors import translated

#: Upper bound of a creation time: "created before ANY_TIME" is every block.
ANY_TIME = 1 << 62
AGED_BLOCK_COLUMNS = 'b.created, b.id, b.pack_id, b."offset", b.length, b.raw_length, b.codec, b.dict_id'
#: Condition on chunks ``c``: unreferenced since before the parameter (reclaim deletes these).
EXPIRED = "c.refcount <= 0 AND c.unref_since IS NOT NULL AND c.unref_since <= %s"
#: Condition on blocks ``b``: recompression has not handled it.
UNHANDLED = "NOT EXISTS (SELECT 1 FROM recompressed r WHERE r.block_id = b.id)"

_MERGEABLE_SQL = f"""
WITH RECURSIVE tree(ino) AS (
    SELECT %s::bigint UNION SELECT d.ino FROM dentries d JOIN tree ON d.parent = tree.ino
),
owned AS (
    SELECT c.block_id AS bid, min(f.ino) AS ino FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
    WHERE f.ino IN (SELECT ino FROM tree) GROUP BY c.block_id
)
SELECT {AGED_BLOCK_COLUMNS}
FROM owned o JOIN blocks b ON b.id = o.bid
WHERE b.raw_length <= %s AND b.raw_length > 0 AND b.created <= %s AND {UNHANDLED}
  AND NOT EXISTS (SELECT 1 FROM chunks c2 JOIN file_chunks f2 ON f2.chunk_id = c2.id
                  WHERE c2.block_id = b.id AND f2.ino <> o.ino)
  AND NOT EXISTS (SELECT 1 FROM dentries d WHERE d.ino = o.ino AND d.name = %s)
ORDER BY o.ino, b.id
"""


def _aged(rows) -> list[AgedBlock]:
    return [AgedBlock(*r) for r in rows]


@translated
class PostgresMaintenance(Domain, Maintenance):
    """Maintenance operations over one view."""

    # -- garbage collection ---------------------------------------------------------------
    def stored_bytes(self) -> int:
        return self._one("SELECT coalesce(sum(size), 0)::bigint FROM packs")[0]

    def reclaimable(self, before: int) -> tuple[int, int]:
        return tuple(self._one(f"SELECT count(*), coalesce(sum(length), 0)::bigint FROM chunks c WHERE {EXPIRED}",
                               (before,)))

    def reclaim_chunks(self, before: int, limit: int) -> list[tuple[int, int]]:
        rows = self._x(f"DELETE FROM chunks WHERE id IN (SELECT id FROM chunks c WHERE {EXPIRED} LIMIT %s) "
                       "RETURNING id, length", (before, limit)).fetchall()
        if rows:
            self._touched.everything = True
        return [(cid, length) for cid, length in rows]

    def drop_blocks_without_chunks(self) -> list[int]:
        dead = [r[0] for r in self._x(
            "DELETE FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.block_id = b.id) RETURNING id")]
        self._x("DELETE FROM recompressed WHERE block_id = ANY(%s)", (dead,))
        return sorted(dead)

    def blocks_emptied_by_reclaim(self, before: int) -> int:
        return self._one("SELECT count(*) FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                         f"WHERE c.block_id = b.id AND NOT ({EXPIRED}))", (before,))[0]

    def drop_unused_dictionaries(self) -> list[int]:
        return sorted(r[0] for r in self._x(
            "DELETE FROM dictionaries d WHERE id < (SELECT max(id) FROM dictionaries) "
            "AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.dict_id = d.id AND b.codec = %s) RETURNING id",
            (codec.CODEC_ZSTD_DICT,)))

    def drop_empty_packs(self, pack_ids: Iterable[int] | None = None, *, keep: int | None = None) -> list[int]:
        only, params = ("", (keep,)) if pack_ids is None else ("AND p.id = ANY(%s)", (keep, list(pack_ids)))
        return sorted(r[0] for r in self._x(
            f"DELETE FROM packs p WHERE p.id IS DISTINCT FROM %s::bigint {only} "
            "AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.pack_id = p.id) RETURNING id", params))

    def pack_liveness(self, reencode_below: float, reclaimed_before: int | None = None) -> list[PackLiveness]:
        if reclaimed_before is None:
            chunk_filter, params = "", (reencode_below,)
        else:
            chunk_filter, params = f"WHERE NOT ({EXPIRED})", (reclaimed_before, reencode_below)
        rows = self._x(
            f"WITH l AS (SELECT block_id, sum(length) AS live FROM chunks c {chunk_filter} GROUP BY block_id) "
            "SELECT p.id, p.size, coalesce(sum(CASE WHEN coalesce(l.live, 0) >= b.raw_length * %s THEN b.length "
            "ELSE b.length * coalesce(l.live, 0)::float8 / greatest(b.raw_length, 1) END), 0)::float8 "
            "FROM packs p LEFT JOIN blocks b ON b.pack_id = p.id LEFT JOIN l ON l.block_id = b.id "
            "GROUP BY p.id ORDER BY p.id", params).fetchall()
        return [PackLiveness(*r) for r in rows]

    def blocks_in_pack(self, pack_id: int) -> list[AgedBlock]:
        return _aged(self._x(f'SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE b.pack_id = %s ORDER BY b."offset"',
                             (pack_id,)))

    def relocate_blocks(self, frames: Iterable[AgedBlock]) -> None:
        self._bulk('UPDATE blocks SET pack_id = u.pack_id, "offset" = u.off, length = u.length, codec = u.codec, '
                   "dict_id = u.dict_id FROM {rows} AS u(id, pack_id, off, length, codec, dict_id) "
                   "WHERE blocks.id = u.id", ("bigint", "bigint", "bigint", "bigint", "integer", "bigint"),
                   [(b.id, b.pack_id, b.offset, b.length, b.codec, b.dict_id) for b in frames])

    def _insert_block(self, b: AgedBlock) -> None:
        self._x('INSERT INTO blocks (id, pack_id, "offset", length, raw_length, codec, dict_id, created) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (b.id, b.pack_id, b.offset, b.length, b.raw_length, b.codec, b.dict_id, b.created))

    def replace_block(self, old_id: int, new: AgedBlock, chunk_offsets: Iterable[tuple[int, int]]) -> None:
        self._insert_block(new)
        self._bulk(f"UPDATE chunks SET block_id = {int(new.id)}, block_off = u.off FROM {{rows}} AS u(id, off) "
                   "WHERE chunks.id = u.id", ("bigint", "bigint"), chunk_offsets)
        self._x("DELETE FROM blocks WHERE id = %s", (old_id,))
        self._x("UPDATE recompressed SET block_id = %s WHERE block_id = %s", (new.id, old_id))

    # -- recompression --------------------------------------------------------------------
    def pending(self, before: int | None) -> tuple[int, int]:
        return tuple(self._one("SELECT count(*), coalesce(sum(length), 0)::bigint FROM blocks b "
                               f"WHERE created <= %s AND {UNHANDLED}", (ANY_TIME if before is None else before,)))

    def recompress_candidates(self, before: int, limit: int,
                              after: tuple[int, int] = (-1, -1)) -> list[AgedBlock]:
        return _aged(self._x(
            f"SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE b.created <= %s AND {UNHANDLED} "
            "AND (b.created, b.id) > (%s, %s) ORDER BY b.created, b.id LIMIT %s", (before, *after, limit)))

    def files_of_block(self, block_id: int) -> list[int]:
        return [r[0] for r in self._x("SELECT DISTINCT f.ino FROM chunks c JOIN file_chunks f "
                                      "ON f.chunk_id = c.id WHERE c.block_id = %s", (block_id,))]

    def mergeable_blocks(self, directory: int, max_raw: int, before: int, alone: bytes) -> list[AgedBlock]:
        return _aged(self._x(_MERGEABLE_SQL, (directory, max_raw, before, alone)))

    def merge_blocks(self, new: AgedBlock, sources: Iterable[tuple[int, int]]) -> None:
        self._insert_block(new)
        sources = list(sources)
        self._bulk(f"UPDATE chunks SET block_id = {int(new.id)}, block_off = block_off + u.base "
                   "FROM {rows} AS u(bid, base) WHERE chunks.block_id = u.bid", ("bigint", "bigint"), sources)
        ids = [bid for bid, _ in sources]
        self._x("DELETE FROM blocks WHERE id = ANY(%s)", (ids,))
        self._x("DELETE FROM recompressed WHERE block_id = ANY(%s)", (ids,))

    def mark_recompressed(self, blocks: Iterable[tuple[int, int]], level: int, done_at: int) -> None:
        self._bulk(f"INSERT INTO recompressed (block_id, level, length_before, done_at) "
                   f"SELECT bid, {int(level)}, length, {int(done_at)} FROM {{rows}} AS u(bid, length) "
                   "ON CONFLICT (block_id) DO UPDATE SET level = excluded.level, "
                   "length_before = excluded.length_before, done_at = excluded.done_at",
                   ("bigint", "bigint"), blocks)

    def recompressed_level(self, block_id: int) -> int | None:
        row = self._one("SELECT level FROM recompressed WHERE block_id = %s", (block_id,))
        return row[0] if row else None

    def _small(self, max_raw: int, named: bytes | None) -> tuple[str, tuple]:
        """Condition on blocks ``b`` and its parameters (see ``small_blocks``)."""
        cond = "b.raw_length <= %s AND b.raw_length > 0"
        if named is None:
            return cond, (max_raw,)
        return (cond + " AND EXISTS (SELECT 1 FROM chunks c JOIN file_chunks f ON f.chunk_id = c.id "
                       "JOIN dentries d ON d.ino = f.ino WHERE c.block_id = b.id AND d.name = %s)", (max_raw, named))

    def small_blocks(self, max_raw: int, named: bytes | None = None) -> list[AgedBlock]:
        cond, params = self._small(max_raw, named)
        return _aged(self._x(f"SELECT {AGED_BLOCK_COLUMNS} FROM blocks b WHERE {cond} ORDER BY b.created DESC",
                             params))

    def count_small_blocks(self, max_raw: int, named: bytes | None = None) -> int:
        cond, params = self._small(max_raw, named)
        return self._one(f"SELECT count(*) FROM blocks b WHERE {cond}", params)[0]

    # -- zstd dictionaries ----------------------------------------------------------------
    def dictionary(self, dict_id: int) -> bytes | None:
        row = self._one("SELECT data FROM dictionaries WHERE id = %s", (dict_id,))
        return row[0] if row else None

    def latest_dictionary(self) -> DictionaryInfo | None:
        row = self._one("SELECT id, samples, sample_bytes, small_blocks FROM dictionaries ORDER BY id DESC LIMIT 1")
        return DictionaryInfo(*row) if row else None

    def next_dictionary_id(self) -> int:
        return self._one("SELECT coalesce(max(id), 0) + 1 FROM dictionaries")[0]

    def add_dictionary(self, dict_id: int, data: bytes, samples: int, sample_bytes: int, small_blocks: int) -> None:
        self._x("INSERT INTO dictionaries (id, created, data, samples, sample_bytes, small_blocks) "
                "VALUES (%s, %s, %s, %s, %s, %s)", (dict_id, time.time_ns(), data, samples, sample_bytes, small_blocks))
