"""The ``content`` domain on PostgreSQL: tables ``file_chunks``, ``chunks``, ``blocks``, ``packs``,
and the id sequences (``reserve_ids``)."""

from __future__ import annotations

from collections.abc import Iterable

from ..content import ChunkGoneError, Content
from ..rows import BlockRow, ChunkInBlock, ChunkLocation
from .domain import Domain
from .errors import translated
from .schema import ID_SEQUENCES
from store.core.errors import IntegrityError
from store.core.rewrite import Extent

#: ``pg_advisory_lock`` key serializing id reservations (any constant of this catalog's own).
_RESERVE_LOCK = 0x5E55_1045
_ID_TABLES = {"block": "blocks", "chunk": "chunks", "pack": "packs"}


def release_content(domain: Domain, ino: int, now: int) -> None:
    """Drop every chunk reference of ``ino`` (its content becomes empty), in one statement."""
    if domain._one(
            "WITH gone AS (DELETE FROM file_chunks WHERE ino = %s RETURNING chunk_id), "
            "dropped AS (UPDATE chunks SET refcount = chunks.refcount - r.n, "
            "unref_since = CASE WHEN chunks.refcount - r.n = 0 THEN %s ELSE chunks.unref_since END "
            "FROM (SELECT chunk_id, count(*) AS n FROM gone GROUP BY chunk_id) AS r WHERE chunks.id = r.chunk_id) "
            "SELECT count(*) FROM gone", (ino, now))[0]:
        domain._touched.contents.add(ino)


@translated
class PostgresContent(Domain, Content):
    """``Content`` over one view (see ``store.backends.catalog.content``)."""

    # -- reads -------------------------------------------------------------------------
    def extents(self, ino: int) -> list[Extent]:
        rows = self._x("SELECT f.off, c.length, f.chunk_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                       "WHERE f.ino = %s ORDER BY f.off", (ino,)).fetchall()
        return [Extent(*r) for r in rows]

    def locations(self, ino: int, start: int, end: int, max_chunk: int) -> list[ChunkLocation]:
        rows = self._x(
            "SELECT f.off, c.length, f.chunk_id, c.hash, c.block_id, c.block_off, "
            'b.pack_id, b."offset", b.length, b.raw_length, b.codec, b.dict_id '
            "FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id LEFT JOIN blocks b ON b.id = c.block_id "
            "WHERE f.ino = %s AND f.off > %s AND f.off < %s ORDER BY f.off",
            (ino, start - max_chunk, end)).fetchall()
        for r in rows:
            if r[1] is None:
                raise IntegrityError(f"file inode {ino} refers to chunk {r[2]} at offset {r[0]}, "
                                     "which the catalog does not have")
        return [ChunkLocation(r[0], r[1], r[2], r[3], r[4], r[5],
                              None if r[6] is None else BlockRow(r[4], *r[6:]))
                for r in rows if r[0] + r[1] > start]

    def chunks(self, extents: Iterable[tuple[int, int]]) -> list[ChunkLocation] | None:
        extents = list(extents)
        found = {r[0]: r for r in self._x("SELECT id, length, hash, block_id, block_off FROM chunks WHERE id = ANY(%s)",
                                          ([cid for _, cid in extents],))}
        try:
            return [ChunkLocation(off, found[cid][1], cid, found[cid][2], found[cid][3], found[cid][4])
                    for off, cid in extents]
        except KeyError:
            return None

    def block(self, block_id: int) -> BlockRow | None:
        row = self._one('SELECT id, pack_id, "offset", length, raw_length, codec, dict_id FROM blocks WHERE id = %s',
                        (block_id,))
        return BlockRow(*row) if row else None

    def chunks_in_block(self, block_id: int) -> list[ChunkInBlock]:
        return [ChunkInBlock(*r) for r in self._x(
            "SELECT id, hash, block_off, length FROM chunks WHERE block_id = %s ORDER BY block_off", (block_id,))]

    def chunk_by_hash(self, digest: bytes) -> tuple[int, int] | None:
        row = self._one("SELECT id, length FROM chunks WHERE hash = %s", (digest,))
        return (row[0], row[1]) if row else None

    def chunks_by_hash(self, digests: list[bytes]) -> dict[bytes, tuple[int, int]]:
        if not digests:
            return {}
        return {bytes(h): (cid, n) for h, cid, n in self._x(
            "SELECT hash, id, length FROM chunks WHERE hash = ANY(%s)", (list(digests),))}

    def data_bytes(self, inos: list[int]) -> dict[int, int]:
        found = dict.fromkeys(inos, 0)
        found.update((ino, int(n)) for ino, n in self._x(
            "SELECT f.ino, sum(c.length) FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
            "WHERE f.ino = ANY(%s) GROUP BY f.ino", (list(inos),)))
        return found

    def packs(self) -> dict[int, tuple[int, bool]]:
        return {pid: (size, sealed) for pid, size, sealed in self._x("SELECT id, size, sealed FROM packs")}

    def reserve_ids(self, kind: str, count: int, floor: int = 1) -> int:
        """A range on the sequence of ``kind`` (``schema.ID_SEQUENCES``), moved past it under a
        session advisory lock held for two statements. A sequence does not roll back, so a
        range is never handed out twice even when the transaction around it rolls back; the
        range also starts past every id in use (a row a repair wrote) and at ``floor``."""
        if kind not in ID_SEQUENCES or count < 1:
            raise ValueError(f"cannot reserve {count} {kind} ids")
        seq, table = ID_SEQUENCES[kind], _ID_TABLES[kind]
        self._x("SELECT pg_advisory_lock(%s)", (_RESERVE_LOCK,))
        try:
            first = self._one(f"SELECT greatest(nextval('{seq}'), (SELECT coalesce(max(id), 0) + 1 FROM {table}), "
                              "%s::bigint)", (floor,))[0]
            self._x(f"SELECT setval('{seq}', %s)", (first + count - 1,))
        finally:
            self._x("SELECT pg_advisory_unlock(%s)", (_RESERVE_LOCK,))
        return first

    # -- writes ------------------------------------------------------------------------
    def seal_packs(self, pack_ids: list[int]) -> None:
        self._x("UPDATE packs SET sealed = true WHERE id = ANY(%s)", (list(pack_ids),))

    def record_packs(self, new_packs: list[int], pack_ends: dict[int, int], open_pack: int | None,
                     now: int) -> None:
        self._many("INSERT INTO packs (id, size, created) VALUES (%s, 0, %s) ON CONFLICT (id) DO NOTHING",
                   [(pid, now) for pid in new_packs])
        self._many("UPDATE packs SET size = %s WHERE id = %s", [(end, pid) for pid, end in pack_ends.items()])
        self._x("UPDATE packs SET sealed = true WHERE NOT sealed AND id <> %s", (-1 if open_pack is None else open_pack,))

    def add_blocks(self, rows: list[tuple]) -> None:
        self._bulk('INSERT INTO blocks (id, pack_id, "offset", length, raw_length, codec, dict_id, created) '
                   "SELECT * FROM {rows}", ("bigint",) * 5 + ("integer", "bigint", "bigint"), rows)

    def add_chunks(self, rows: list[tuple[int, bytes, int, int, int]], now: int) -> None:
        self._bulk("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                   "SELECT id, hash, length, block_id, block_off, 0, unref_since "
                   "FROM {rows} AS r(id, hash, length, block_id, block_off, unref_since)",
                   ("bigint", "bytea", "bigint", "bigint", "bigint", "bigint"), [(*c, now) for c in rows])

    def release_content(self, ino: int, now: int) -> None:
        release_content(self, ino, now)

    def commit_file(self, ino: int, extents: list[tuple[int, int, int]], *, size: int, mtime_ns: int,
                    ctime_ns: int, now: int, content_seq: int | None = None) -> bool:
        """Three statements: the inode's row, the old chunk list released, the new one added with
        its counts (a round trip each on a shared catalog)."""
        if self._one("UPDATE inodes SET size = %s, mtime_ns = %s, ctime_ns = greatest(ctime_ns, %s), "
                     "content_seq = coalesce(%s, content_seq) WHERE id = %s RETURNING 1",
                     (size, mtime_ns, ctime_ns, content_seq, ino)) is None:
            return False
        self._touched.inodes.add(ino)
        release_content(self, ino, now)
        if not extents:
            return True
        self._touched.contents.add(ino)
        wanted = len({cid for _, _, cid in extents})
        updated = self._bulk("WITH added AS (INSERT INTO file_chunks (ino, off, chunk_id) SELECT * FROM {rows} "
                             "RETURNING chunk_id) "
                             "UPDATE chunks SET refcount = chunks.refcount + u.n, unref_since = NULL "
                             "FROM (SELECT chunk_id, count(*) AS n FROM added GROUP BY chunk_id) AS u "
                             "WHERE chunks.id = u.chunk_id", ("bigint",) * 3,
                             [(ino, off, cid) for off, _, cid in extents])
        if updated != wanted:
            raise ChunkGoneError(f"inode {ino}: {wanted - updated} of its chunks no longer exist")
        return True
