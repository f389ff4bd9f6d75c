"""``sessionfs verify``: check the catalog against the packs, and repair what needs no guessing.

What is checked (``Verifier.run``), each finding a ``Problem`` with a stable
``kind``, one line of message naming the file paths it affects, and details:

=====================  =============================================================
kind                   meaning
=====================  =============================================================
format                 the catalog's format version is not this program's
catalog                SQLite's own ``quick_check`` fails
pack-missing           a pack the catalog lists is neither in the object store nor local
pack-truncated         a pack is shorter than its committed size
orphan-pack            a pack (object or local) the catalog does not list
block-outside-pack     a block's extent is past its pack's committed size
block-without-pack     a block names a pack the catalog does not list
block-overlap          two blocks share bytes of a pack
block-header           a block's frame header does not parse or disagrees with the catalog
corrupt-data           (``--data``) a block does not decode, or chunks fail their SHA-256
missing-dictionary     a block needs a zstd dictionary the catalog does not hold
chunk-outside-block    a chunk's extent is past its block's decoded length
chunk-missing-block    a chunk names a block that does not exist
refcount               a chunk's reference count differs from its ``file_chunks`` rows
missing-chunk          a file refers to a chunk that does not exist
orphan-file-chunks     chunk references of an inode that does not exist or is not a file
extent-overlap         two chunk references of one file overlap
extent-past-eof        a chunk reference ends past the file's size
dangling-dentry        a directory entry names an inode that does not exist
bad-parent             a directory entry's parent does not exist or is not a directory
nlink                  an inode's link count differs from its directory entries
unreachable            an inode with a link count but no directory entry
session-stale          a ``sessions`` row that no session directory backs (or outdated)
session-missing        a session directory with a valid metadata.json but no row
invalid-json           (warning) a known session JSON file is not valid JSON
unrecorded-loss        a file refers to lost data but is not in lost+found
counters               a stored total (``counters``) differs from its recount
=====================  =============================================================

Without ``--data`` the packs are checked by location, size and frame header
(one small read per block); with it every block is read, decoded and every
chunk hashed, and every known session JSON file is parsed.

Consistency while the store is mounted: the catalog is read in one snapshot
(an SQLite read transaction), so the checks agree with each other. Packs are
checked after; a finding about a pack or block that background maintenance
moved meanwhile is checked again against the current catalog and dropped if
it no longer holds.

Repair (``repair.repair``, ``--repair``) runs in the persistence worker of a store
opened for writing, so it refuses a store a daemon holds (``LockedError``).
It fixes what needs no guessing, in one durable transaction:

- reference counts and link counts are recounted; ``unref_since`` set where
  a count is 0;
- dangling directory entries and chunk references of missing inodes dropped;
- the ``sessions`` rows are rebuilt from the session directories;
- orphan pack files deleted (the writable open already does that);
- the stored totals (``counters``) set to their recount;
- data that is gone (missing pack, truncated pack, corrupt block, chunk that
  fails its hash, chunk or block that does not exist) is marked *lost*: each
  such chunk keeps its id and length but points at no block (``LOST_BLOCK``) and
  gets a hash no content can have, so reading it fails with EIO (never zeros,
  never wrong bytes) and dedup never reuses it; the blocks and packs that held
  only lost data are dropped. Every file with lost ranges is recorded in
  ``lost_found`` with its path, the ranges and why, and stays where it is:
  its healthy ranges still read. A second verify lists those files as
  lost+found, not as problems. Rewriting or deleting the file releases the
  lost chunks (gc reclaims them) and the stale entry is pruned by the next repair.

Not repaired (they need a decision): overlapping extents, extents past EOF,
overlapping blocks, entries under a missing parent, unreachable inodes,
invalid JSON, a failing ``quick_check``, a wrong format version.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import stat
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import orjson

from store.core import codec
from store.backends.catalog.sqlite import counters, session_index
from store.backends.catalog.sqlite.counters import COUNTERS_FORMAT
from store.core.chunker import chunk_hash
from store.core.errors import IntegrityError
from store.core.units import human_bytes
from store.backends.objects.packs import pack_name
from store.core.layout import ARRAY_KINDS, LARGE_OBJECTS, METADATA_FILE, parse_chunk_file_name
from store.backends.catalog.rows import LOST_BLOCK, LOST_HASH_PREFIX, ROOT_INO
from store.backends.catalog.sqlite.schema import FORMAT_VERSION, has_table, read_format_version

log = logging.getLogger("sessionfs.verify")

#: Paths named in one problem line before "and N more".
MAX_PATHS = 20
_KNOWN_JSON = {METADATA_FILE, *LARGE_OBJECTS.values()}
_CHUNK_DIRS = {kind.directory for kind in ARRAY_KINDS.values()}


@dataclass
class Problem:
    kind: str
    message: str
    severity: str = "error"                 # "error" or "warning"
    paths: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    repair: str | None = None               # what --repair does about it; None: not repaired
    # Re-checked against the current catalog after the snapshot (background maintenance).
    recheck: Callable | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("recheck", None)
        return d

    def line(self) -> str:
        return f"{self.severity}: {self.kind}: {self.message}"


@dataclass
class Report:
    data: bool
    problems: list[Problem] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    lost: list[dict] = field(default_factory=list)        # active lost+found entries
    # Plans for repair (ids), filled while checking.
    bad_chunks: dict = field(default_factory=dict)         # chunk id -> reason
    bad_blocks: dict = field(default_factory=dict)         # block id -> reason (wholly unreadable)
    missing_refs: list = field(default_factory=list)       # (ino, off, chunk_id, inferred length)
    missing_packs: list = field(default_factory=list)
    truncated_packs: dict = field(default_factory=dict)    # pack id -> file size
    orphan_packs: list = field(default_factory=list)
    refcounts: list = field(default_factory=list)          # chunk ids
    nlinks: list = field(default_factory=list)             # (ino, expected)
    dangling: list = field(default_factory=list)           # (parent, name)
    orphan_file_chunks: list = field(default_factory=list)  # inos
    session_dirs: set = field(default_factory=set)         # dir inos to re-index
    stale_sessions: list = field(default_factory=list)     # session ids
    unrecorded: dict = field(default_factory=dict)         # ino -> reason (lost, not in lost_found)
    stale_lost: int = 0                                    # lost_found entries of files since rewritten
    counters: bool = False                                 # the stored totals disagree with the tables

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def repairable(self) -> bool:
        return any(p.repair for p in self.problems) or bool(self.stale_lost)

    def summary(self) -> str:
        c = self.counts
        checked = (f"checked {c.get('packs', 0):,} packs, {c.get('blocks', 0):,} blocks, "
                   f"{c.get('chunks', 0):,} chunks, {c.get('files', 0):,} files, {c.get('sessions', 0):,} sessions")
        if self.data:
            checked += f"; {human_bytes(c.get('decoded_bytes', 0))} decoded and hashed"
        else:
            checked += " (locations and headers; --data reads and hashes everything)"
        e, w = len(self.errors), len(self.warnings)
        verdict = "no problems" if not e and not w else \
            f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"
        lines = [checked, verdict]
        if self.lost:
            lines.append(f"lost+found: {len(self.lost)} file{'s' if len(self.lost) != 1 else ''} with lost data "
                         "(reads of the lost ranges fail)")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "data": self.data, "counts": self.counts,
                "problems": [p.as_dict() for p in self.problems], "lost_found": self.lost,
                "errors": len(self.errors), "warnings": len(self.warnings)}


def ranges_text(ranges: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"[{a}, {b})" for a, b in ranges[:3])
    return shown + (f" and {len(ranges) - 3} more ranges" if len(ranges) > 3 else "")


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def is_lost_hash(h: bytes) -> bool:
    return len(h) == 33 and h[:1] == LOST_HASH_PREFIX


class Verifier:
    """One verification pass over an open store (read-only or writable)."""

    def __init__(self, store, *, data: bool = False, progress: Callable[[int, int], None] | None = None):
        self.store = store
        self.data = data
        self.progress = progress
        self.report = Report(data=data)
        self._paths: dict[int, str] = {}

    # -- helpers -------------------------------------------------------------------
    def path(self, ino: int) -> str:
        p = self._paths.get(ino)
        if p is None:
            p = self.store.catalog.path_of(ino, self.db)
            p = p if p is not None else f"<inode {ino}, no name>"
            self._paths[ino] = p
        return p

    def add(self, kind: str, message: str, *, severity: str = "error", paths: Iterable[str] = (),
            repair: str | None = None, recheck: Callable | None = None, **details) -> Problem:
        p = Problem(kind, message, severity, list(paths), details, repair, recheck)
        self.report.problems.append(p)
        return p

    def affected(self, chunk_ids: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
        """ino -> merged byte ranges of the files referring to any of ``chunk_ids``."""
        out: dict[int, list] = defaultdict(list)
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for ino, off, length in self.db.execute(
                    "SELECT f.ino, f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                    f"WHERE f.chunk_id IN ({','.join('?' * len(part))})", part):
                out[ino].append((off, off + length))
        return {ino: merge_ranges(r) for ino, r in out.items()}

    def _mark_lost(self, blocks, why: str) -> tuple[str, list[str]]:
        """Mark ``blocks`` (catalog rows, id first) and their chunks bad for ``why``;
        returns the text and paths naming the files they affect."""
        chunk_ids = self._chunks_of(b[0] for b in blocks)
        for b in blocks:
            self.report.bad_blocks[b[0]] = why
        for c in chunk_ids:
            self.report.bad_chunks[c] = why
        return self.files_text(self.affected(chunk_ids))

    def files_text(self, affected: dict[int, list[tuple[int, int]]]) -> tuple[str, list[str]]:
        if not affected:
            return "no file refers to it", []
        paths = sorted((self.path(ino), ranges) for ino, ranges in affected.items())
        shown = "; ".join(f"{p} {ranges_text(r)}" for p, r in paths[:MAX_PATHS])
        more = f"; and {len(paths) - MAX_PATHS} more files (--json lists all)" if len(paths) > MAX_PATHS else ""
        return f"affects {shown}{more}", [p for p, _ in paths]

    # -- the pass --------------------------------------------------------------------
    def run(self) -> Report:
        self.db = self.store.catalog.reader()
        self.db.execute("BEGIN")
        try:
            self._format()
            self._packs_and_blocks()
            self._chunks()
            self._file_chunks()
            self._namespace()
            self._sessions()
            self._counters()
            if self.data:
                self._json_files()
            self._lost_found()
        finally:
            self.db.execute("COMMIT")
        self._recheck()
        return self.report

    def _recheck(self) -> None:
        """Drop pack/block findings that background maintenance made moot meanwhile."""
        keep = []
        db = self.store.catalog.reader()
        for p in self.report.problems:
            if p.recheck is not None:
                try:
                    still = p.recheck(db)
                except Exception:  # noqa: BLE001 - keep the finding when unsure
                    still = True
                if not still:
                    continue
            keep.append(p)
        self.report.problems = keep

    # -- format, catalog -------------------------------------------------------------------
    def _format(self) -> None:
        version = read_format_version(self.db)
        if version is not None and version < FORMAT_VERSION:
            self.add("format", f"catalog.db has format version {version}; it is upgraded to {FORMAT_VERSION} at "
                               "the next writable open (mount, --repair)", severity="warning")
        elif version != FORMAT_VERSION:
            self.add("format", f"catalog.db has format version {version}, this sessionfs reads {FORMAT_VERSION}")
        rows = [r[0] for r in self.db.execute("PRAGMA quick_check")]
        rows = [r for r in rows if r != "ok" and not self._false_null(r)]
        if rows:
            self.add("catalog", "catalog.db fails SQLite's quick_check: " + "; ".join(map(str, rows[:3])))

    def _false_null(self, message: str) -> bool:
        """SQLite 3.40 reports 'NULL value in t.c' for WITHOUT ROWID tables whose primary key
        lists columns in another order than the table (session_tags, session_topics) although
        no row holds a NULL. Such a line counts only when a query finds the NULL."""
        m = re.fullmatch(r"NULL value in (\w+)\.(\w+)", message)
        if not m:
            return False
        try:
            n = self.db.execute(f'SELECT count(*) FROM "{m[1]}" WHERE "{m[2]}" IS NULL').fetchone()[0]
        except sqlite3.Error:
            return False
        return n == 0

    # -- packs and blocks ------------------------------------------------------------------
    def _packs_and_blocks(self) -> None:
        packs = self.store.packs
        rows = {pid: size for pid, size in self.db.execute("SELECT id, size FROM packs")}
        self.report.counts["packs"] = len(rows)
        present = packs.sizes()
        for pid, size in present.items():
            if pid not in rows:
                self.report.orphan_packs.append(pid)
                self.add("orphan-pack", f"pack {pack_name(pid)} ({size} bytes) is not in the catalog "
                                        "(left by a batch that never committed)",
                         repair="delete the pack", pack=pid, size=size,
                         recheck=lambda db, pid=pid: db.execute("SELECT 1 FROM packs WHERE id = ?",
                                                                (pid,)).fetchone() is None)
        self._dict_ids = {r[0] for r in self.db.execute("SELECT id FROM dictionaries")} \
            if has_table(self.db, "dictionaries") else set()
        blocks = self.db.execute(
            "SELECT id, pack_id, offset, length, raw_length, codec, dict_id FROM blocks "
            "ORDER BY pack_id, offset").fetchall()
        self.report.counts["blocks"] = len(blocks)
        by_pack: dict[int, list] = defaultdict(list)
        for b in blocks:
            by_pack[b[1]].append(b)
        total = sum(b[3] for b in blocks)
        done = 0
        for pid, pblocks in by_pack.items():
            if pid not in rows:
                for b in pblocks:
                    self._bad_block(b, "block-without-pack",
                                    f"block {b[0]} names pack {pid:08d}, which the catalog does not list")
                done += sum(b[3] for b in pblocks)
                continue
            fsize = present.get(pid)
            if fsize is None:
                self.report.missing_packs.append(pid)
                text, paths = self._mark_lost(pblocks, f"pack {pid:08d} is missing")
                self.add("pack-missing", f"pack {pack_name(pid)} is missing ({len(pblocks)} blocks, "
                                         f"{human_bytes(sum(b[3] for b in pblocks))}); {text}",
                         paths=paths, repair="record the files in lost+found; drop the pack's catalog rows",
                         pack=pid, recheck=self._pack_recheck(pid))
                done += sum(b[3] for b in pblocks)
                continue
            committed = rows[pid]
            past = [b for b in pblocks if b[2] + b[3] > fsize]
            if fsize < committed:
                self.report.truncated_packs[pid] = fsize
                text, paths = self._mark_lost(past, f"pack {pid:08d} is truncated")
                self.add("pack-truncated", f"pack {pack_name(pid)} is truncated: {fsize} bytes stored, "
                                           f"catalog says {committed}; {len(past)} blocks lost; {text}",
                         paths=paths, repair="record the files in lost+found; drop the lost blocks",
                         pack=pid, stored_size=fsize, size=committed, recheck=self._pack_recheck(pid))
            past_ids = {b[0] for b in past}
            prev_end, prev_id = 0, None
            for b in pblocks:
                bid, _, off, length = b[:4]
                if off < prev_end:
                    self.add("block-overlap", f"blocks {prev_id} and {bid} overlap in pack {pid:08d} at {off}",
                             block=bid, pack=pid)
                prev_end, prev_id = max(prev_end, off + length), bid
                if bid in past_ids:
                    continue
                if off + length > committed:
                    self._bad_block(b, "block-outside-pack",
                                    f"block {bid} at pack {pid:08d} offset {off} ends at {off + length}, past the "
                                    f"pack's committed size {committed}")
                    continue
                self._check_block(b)
                done += length
                if self.progress:
                    self.progress(done, total)

    def _pack_recheck(self, pid: int) -> Callable:
        def still(db) -> bool:
            row = db.execute("SELECT 1 FROM packs WHERE id = ?", (pid,)).fetchone()
            return row is not None and db.execute("SELECT 1 FROM blocks WHERE pack_id = ? LIMIT 1",
                                                  (pid,)).fetchone() is not None
        return still

    def _block_recheck(self, b) -> Callable:
        bid, pid, off = b[0], b[1], b[2]

        def still(db) -> bool:
            row = db.execute("SELECT pack_id, offset FROM blocks WHERE id = ?", (bid,)).fetchone()
            return row is not None and tuple(row) == (pid, off)
        return still

    def _chunks_of(self, block_ids: Iterable[int]) -> list[int]:
        ids = list(block_ids)
        out = []
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            out.extend(r[0] for r in self.db.execute(
                f"SELECT id FROM chunks WHERE block_id IN ({','.join('?' * len(part))})", part))
        return out

    def _bad_block(self, b, kind: str, why: str, chunk_ids: list[int] | None = None) -> None:
        """Record a wholly (or, with chunk_ids, partly) unreadable block as a problem."""
        bid = b[0]
        whole = chunk_ids is None
        ids = self._chunks_of([bid]) if whole else chunk_ids
        if whole:
            self.report.bad_blocks[bid] = why
        for c in ids:
            self.report.bad_chunks[c] = why
        text, paths = self.files_text(self.affected(ids))
        self.add(kind, f"{why}; {text}", paths=paths, block=bid, pack=b[1], offset=b[2],
                 chunks=len(ids), repair="record the files in lost+found; mark the data lost",
                 recheck=self._block_recheck(b))

    def _check_block(self, b) -> None:
        bid, pid, off, length, raw_length, codec_id, dict_id = b
        where = f"pack {pid:08d} offset {off} (block {bid})"
        try:
            if self.data:
                frame = self.store.packs.read(pid, off, length)
            else:
                frame = self.store.packs.read(pid, off, min(length, codec.HEADER.size))
            h_codec, h_dict, h_raw, h_len = codec.parse_header(frame, where)
            if codec.HEADER.size + h_len != length:
                raise IntegrityError(f"{where}: frame holds {codec.HEADER.size + h_len} bytes, catalog says {length}")
            if (h_codec, h_raw) != (codec_id, raw_length) or (h_codec == codec.CODEC_ZSTD_DICT and h_dict != dict_id):
                raise IntegrityError(f"{where}: header says codec {h_codec}, dictionary {h_dict}, {h_raw} bytes; "
                                     f"catalog says codec {codec_id}, dictionary {dict_id}, {raw_length} bytes")
        except IntegrityError as exc:
            self._bad_block(b, "block-header", str(exc))
            return
        if codec_id == codec.CODEC_ZSTD_DICT and dict_id not in self._dict_ids:
            self._bad_block(b, "missing-dictionary", f"{where}: needs zstd dictionary {dict_id}, which is not in "
                                                     "the catalog")
            return
        chunk_rows = self.db.execute("SELECT id, hash, block_off, length FROM chunks WHERE block_id = ?",
                                     (bid,)).fetchall()
        outside = [r[0] for r in chunk_rows if r[2] + r[3] > raw_length]
        if outside:
            self._bad_block(b, "chunk-outside-block",
                            f"{len(outside)} chunk(s) of block {bid} ({where}) end past its {raw_length} decoded "
                            "bytes", chunk_ids=outside)
        if not self.data:
            return
        try:
            raw = codec.decode_block(frame, where, self.store.dictionaries)
        except IntegrityError as exc:
            self._bad_block(b, "corrupt-data", str(exc))
            return
        self.report.counts["decoded_bytes"] = self.report.counts.get("decoded_bytes", 0) + len(raw)
        view = memoryview(raw)
        bad = [cid for cid, digest, boff, n in chunk_rows
               if boff + n <= len(raw) and chunk_hash(view[boff:boff + n]) != bytes(digest)]
        if bad:
            self._bad_block(b, "corrupt-data", f"{where}: {len(bad)} of {len(chunk_rows)} chunks fail their SHA-256",
                            chunk_ids=bad)

    # -- chunks ------------------------------------------------------------------------
    def _chunks(self) -> None:
        db = self.db
        self.report.counts["chunks"] = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        for cid, h, block_id, refcount in db.execute(
                "SELECT c.id, c.hash, c.block_id, c.refcount FROM chunks c LEFT JOIN blocks b ON b.id = c.block_id "
                "WHERE b.id IS NULL").fetchall():
            h = bytes(h)
            if block_id == LOST_BLOCK and is_lost_hash(h):
                continue                     # lost data, recorded by a repair (see _lost_found)
            self.report.bad_chunks[cid] = f"its block {block_id} does not exist"
            text, paths = self.files_text(self.affected([cid]))
            self.add("chunk-missing-block", f"chunk {h.hex()[:16]} names block {block_id}, which does not exist; "
                                            f"{text}", paths=paths, chunk=cid, block=block_id,
                     repair="mark the chunk lost and record its files in lost+found" if refcount else
                     "delete the unreferenced chunk row")
        for cid, h, refcount, actual, unref in db.execute(
                "SELECT c.id, c.hash, c.refcount, coalesce(f.n, 0), c.unref_since FROM chunks c "
                "LEFT JOIN (SELECT chunk_id, count(*) AS n FROM file_chunks GROUP BY chunk_id) f "
                "ON f.chunk_id = c.id WHERE c.refcount != coalesce(f.n, 0) "
                "OR (c.refcount = 0 AND c.unref_since IS NULL)").fetchall():
            self.report.refcounts.append(cid)
            text, paths = self.files_text(self.affected([cid]))
            if refcount == actual:
                msg = f"chunk {bytes(h).hex()[:16]} is unreferenced but has no unref_since (gc would never reclaim it)"
            else:
                msg = (f"chunk {bytes(h).hex()[:16]} has reference count {refcount} but {actual} file "
                       f"reference{'s' if actual != 1 else ''}; {text}")
            self.add("refcount", msg, paths=paths, chunk=cid, refcount=refcount, references=actual,
                     repair="recount")

    # -- file_chunks ---------------------------------------------------------------------
    def _file_chunks(self) -> None:
        db = self.db
        missing: dict[int, list] = defaultdict(list)
        for ino, off, cid in db.execute(
                "SELECT f.ino, f.off, f.chunk_id FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id "
                "WHERE c.id IS NULL ORDER BY f.ino, f.off"):
            missing[ino].append((off, cid))
        orphan = {}
        for ino, mode, n in db.execute(
                "SELECT f.ino, i.mode, count(*) FROM file_chunks f LEFT JOIN inodes i ON i.id = f.ino "
                "WHERE i.id IS NULL OR i.mode & 61440 != 32768 GROUP BY f.ino").fetchall():
            orphan[ino] = (mode, n)
            self.report.orphan_file_chunks.append(ino)
            what = "does not exist" if mode is None else "is not a regular file"
            self.add("orphan-file-chunks", f"{n} chunk references belong to inode {ino}, which {what}",
                     ino=ino, repair="drop the references")
        # Extents: overlap, past EOF; and the inferred extent of each missing chunk.
        prev_ino, prev_end = None, 0
        rows = db.execute(
            "SELECT f.ino, f.off, c.length, i.size FROM file_chunks f JOIN inodes i ON i.id = f.ino "
            "LEFT JOIN chunks c ON c.id = f.chunk_id WHERE i.mode & 61440 = 32768 ORDER BY f.ino, f.off")
        ends: dict[int, list] = defaultdict(list)        # for inferring missing chunk lengths
        overlaps: dict[int, list] = defaultdict(list)
        past: dict[int, list] = defaultdict(list)
        files = 0
        for ino, off, length, size in rows:
            if ino != prev_ino:
                prev_ino, prev_end = ino, 0
                files += 1
            if ino in missing:
                ends[ino].append((off, length, size))
            if length is None:
                continue
            if off < prev_end:
                overlaps[ino].append((off, prev_end))
            if off + length > size:
                past[ino].append((off, off + length, size))
            prev_end = max(prev_end, off + length)
        self.report.counts["files"] = db.execute(
            "SELECT count(*) FROM inodes WHERE mode & 61440 = 32768").fetchone()[0]
        for ino, spans in overlaps.items():
            self.add("extent-overlap", f"{self.path(ino)}: chunk references overlap at "
                                       f"{ranges_text(spans)}", paths=[self.path(ino)], ino=ino)
        for ino, spans in past.items():
            self.add("extent-past-eof", f"{self.path(ino)}: chunk references end past the file size "
                                        f"{spans[0][2]} (at {', '.join(str(e) for _, e, _ in spans[:3])})",
                     paths=[self.path(ino)], ino=ino)
        for ino, refs in missing.items():
            if ino in orphan:
                continue
            layout = ends[ino]
            size = layout[0][2] if layout else 0
            lost = []
            for off, cid in refs:
                # The chunk's length is gone with it: the range up to the next reference (or EOF)
                # is either that chunk or a hole, so all of it is marked lost (reads fail there).
                nxt = [o for o, _, _ in layout if o > off]
                end = min([*nxt, size])
                if end > off:
                    lost.append((off, end))
                self.report.missing_refs.append((ino, off, cid, end - off))
            where = ranges_text(merge_ranges(lost)) if lost else f"offsets past the end of the file ({size} bytes)"
            self.add("missing-chunk", f"{self.path(ino)} refers to {len(refs)} chunk(s) that do not exist "
                                      f"(chunk ids {', '.join(str(c) for _, c in refs[:3])}) at {where}",
                     paths=[self.path(ino)], ino=ino, ranges=merge_ranges(lost),
                     repair="record the file in lost+found; reads of those ranges fail" if lost else
                     "drop the references (past the end of the file, never read)")

    # -- namespace ---------------------------------------------------------------------------
    def _namespace(self) -> None:
        db = self.db
        for parent, name, ino in db.execute(
                "SELECT d.parent, d.name, d.ino FROM dentries d LEFT JOIN inodes i ON i.id = d.ino "
                "WHERE i.id IS NULL").fetchall():
            where = self._entry_path(parent, bytes(name))
            self.report.dangling.append((parent, bytes(name)))
            self.add("dangling-dentry", f"{where}: directory entry names inode {ino}, which does not exist",
                     paths=[where], ino=ino, repair="drop the entry")
        for parent, name, ino, pmode in db.execute(
                "SELECT d.parent, d.name, d.ino, p.mode FROM dentries d LEFT JOIN inodes p ON p.id = d.parent "
                "WHERE p.id IS NULL OR p.mode & 61440 != 16384").fetchall():
            what = "does not exist" if pmode is None else "is not a directory"
            self.add("bad-parent", f"entry {bytes(name).decode('utf-8', 'surrogateescape')!r} (inode {ino}) is in "
                                   f"inode {parent}, which {what}", ino=ino, parent=parent)
        subdirs = dict(db.execute(
            "SELECT d.parent, count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
            "WHERE c.mode & 61440 = 16384 GROUP BY d.parent"))
        for ino, mode, nlink, names in db.execute(
                "SELECT i.id, i.mode, i.nlink, count(d.ino) FROM inodes i LEFT JOIN dentries d ON d.ino = i.id "
                "GROUP BY i.id").fetchall():
            if names == 0 and ino != ROOT_INO:
                if nlink != 0:
                    self.add("unreachable", f"inode {ino} has link count {nlink} but no directory entry "
                                            "(unreachable)", ino=ino, nlink=nlink)
                continue                     # nlink 0: unlinked while open; removed at the next open
            expected = 2 + subdirs.get(ino, 0) if stat.S_ISDIR(mode) else names
            if nlink != expected:
                self.report.nlinks.append((ino, expected))
                self.add("nlink", f"{self.path(ino) or '/'}: link count is {nlink}, directory entries say "
                                  f"{expected}", paths=[self.path(ino)], ino=ino, nlink=nlink, expected=expected,
                         repair="recount")

    def _entry_path(self, parent: int, name: bytes) -> str:
        base = "" if parent == ROOT_INO else self.path(parent)
        n = name.decode("utf-8", "surrogateescape")
        return f"{base}/{n}" if base else n

    # -- sessions ---------------------------------------------------------------------------
    def _read(self, ino: int, size: int) -> bytes | None:
        """The file's committed bytes, or None when they cannot be read (reported elsewhere)."""
        try:
            return self.store.read_committed(ino, 0, size)
        except IntegrityError:
            return None

    def _sessions(self) -> None:
        db = self.db
        sessions_ino = self.store.sessions_ino
        rows = {r[0]: r for r in db.execute(
            "SELECT id, dir_ino, name, status, start_time, end_time, category, version, updated_at, meta_size "
            "FROM sessions")}
        tags = defaultdict(set)
        for sid, tag in db.execute("SELECT session_id, tag FROM session_tags"):
            tags[sid].add(tag)
        topics = defaultdict(set)
        for sid, topic in db.execute("SELECT session_id, topic_id FROM session_topics"):
            topics[sid].add(topic)
        dirs = db.execute("SELECT d.name, d.ino FROM dentries d JOIN inodes i ON i.id = d.ino "
                          "WHERE d.parent = ? AND i.mode & 61440 = 16384", (sessions_ino,)).fetchall()
        self.report.counts["sessions"] = len(dirs)
        seen = set()
        for name, dir_ino in dirs:
            sid = bytes(name).decode("utf-8", "surrogateescape")
            seen.add(sid)
            where = f"sessions/{sid}/{METADATA_FILE}"
            meta_row = db.execute("SELECT d.ino, i.size, i.mode FROM dentries d JOIN inodes i ON i.id = d.ino "
                                  "WHERE d.parent = ? AND d.name = ?",
                                  (dir_ino, session_index.METADATA_NAME)).fetchone()
            expected = None
            if meta_row is not None and stat.S_ISREG(meta_row[2]):
                data = self._read(meta_row[0], meta_row[1])
                if data is None:
                    continue        # unreadable (reported as lost data): the row keeps the last good values
                meta = session_index.parse_metadata(data)
                if meta is None:
                    self._invalid_json(where, data)
                else:
                    expected = (session_index.session_fields(meta), meta_row[1])
            row = rows.get(sid)
            if expected is None:
                if row is not None:
                    self.report.session_dirs.add(dir_ino)
                    self.add("session-stale", f"sessions/{sid}: the session index has a row but the directory has "
                                              f"no valid {METADATA_FILE}", paths=[f"sessions/{sid}"],
                             session=sid, repair="rebuild the row from the directory")
                continue
            f, meta_size = expected
            if row is None:
                self.report.session_dirs.add(dir_ino)
                self.add("session-missing", f"{where} is valid but the session index has no row for {sid}",
                         paths=[where], session=sid, repair="rebuild the row from the directory")
                continue
            want = (sid, dir_ino, f.name, f.status, f.start_time, f.end_time, f.category, f.version,
                    f.updated_at, meta_size)
            differs = [col for col, a, b in zip(
                ("id", "dir_ino", "name", "status", "start_time", "end_time", "category", "version", "updated_at",
                 "meta_size"), row, want) if a != b]
            if set(f.tags) != tags.get(sid, set()):
                differs.append("tags")
            if set(f.topic_ids) != topics.get(sid, set()):
                differs.append("topicIds")
            if differs:
                self.report.session_dirs.add(dir_ino)
                self.add("session-stale", f"the session index row of {sid} disagrees with {where} "
                                          f"({', '.join(differs)})", paths=[where], session=sid, columns=differs,
                         repair="rebuild the row from the directory")
        for sid in rows:
            if sid not in seen:
                self.report.stale_sessions.append(sid)
                self.add("session-stale", f"the session index has a row for {sid} but sessions/{sid} is not a "
                                          "session directory", paths=[f"sessions/{sid}"], session=sid,
                         repair="delete the row")

    def _counters(self) -> None:
        if read_format_version(self.db) < COUNTERS_FORMAT:
            return
        wrong = counters.disagreements(self.db)
        if wrong:
            self.report.counters = True
            self.add("counters", "stored totals differ from the tables: " + ", ".join(
                f"{name} {stored:,} (recounted {actual:,})" for name, (stored, actual) in wrong.items()),
                     repair="store the recounted totals", counters={k: list(v) for k, v in wrong.items()})

    def _invalid_json(self, where: str, data: bytes) -> None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.add("invalid-json", f"{where} is not valid JSON: {exc}", severity="warning", paths=[where])
            return
        if where.endswith(METADATA_FILE) and not isinstance(value, dict):
            self.add("invalid-json", f"{where} is JSON but not an object", severity="warning", paths=[where])

    def _json_files(self) -> None:
        """(--data) Every known session JSON file parses."""
        db = self.db
        for sname, sdir in db.execute("SELECT d.name, d.ino FROM dentries d JOIN inodes i ON i.id = d.ino "
                                      "WHERE d.parent = ? AND i.mode & 61440 = 16384",
                                      (self.store.sessions_ino,)).fetchall():
            base = f"sessions/{bytes(sname).decode('utf-8', 'surrogateescape')}"
            for name, ino, mode, size in db.execute(
                    "SELECT d.name, i.id, i.mode, i.size FROM dentries d JOIN inodes i ON i.id = d.ino "
                    "WHERE d.parent = ?", (sdir,)).fetchall():
                name = bytes(name).decode("utf-8", "surrogateescape")
                if stat.S_ISREG(mode) and name in _KNOWN_JSON and name != METADATA_FILE:
                    self._check_json(f"{base}/{name}", ino, size)
                elif stat.S_ISDIR(mode) and name in _CHUNK_DIRS:
                    for cname, cino, cmode, csize in db.execute(
                            "SELECT d.name, i.id, i.mode, i.size FROM dentries d JOIN inodes i ON i.id = d.ino "
                            "WHERE d.parent = ?", (ino,)).fetchall():
                        cname = bytes(cname).decode("utf-8", "surrogateescape")
                        if stat.S_ISREG(cmode) and parse_chunk_file_name(cname) is not None:
                            self._check_json(f"{base}/{name}/{cname}", cino, csize)

    def _check_json(self, where: str, ino: int, size: int) -> None:
        data = self._read(ino, size)
        if data is not None:
            self._invalid_json(where, data)

    # -- lost+found -----------------------------------------------------------------------
    def _lost_found(self) -> None:
        db = self.db
        lost_refs: dict[int, list] = defaultdict(list)
        for ino, off, length in db.execute(
                "SELECT f.ino, f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                "WHERE c.block_id = ? AND length(c.hash) = 33", (LOST_BLOCK,)):
            lost_refs[ino].append((off, off + length))
        recorded = defaultdict(list)
        if has_table(db, "lost_found"):
            for ino, path, reason, ranges, found_at in db.execute(
                    "SELECT ino, path, reason, ranges, found_at FROM lost_found ORDER BY id"):
                recorded[ino].append({"ino": ino, "path": path, "reason": reason, "ranges": json.loads(ranges),
                                      "found_at": found_at})
        self.report.stale_lost = sum(len(v) for ino, v in recorded.items() if ino not in lost_refs)
        for ino, ranges in sorted(lost_refs.items()):
            if ino not in recorded:
                self.report.unrecorded[ino] = "refers to lost data"
                self.add("unrecorded-loss", f"{self.path(ino)} refers to lost data at "
                                            f"{ranges_text(merge_ranges(ranges))} but is not in lost+found",
                         paths=[self.path(ino)], ino=ino, repair="record it in lost+found")
                continue
            entry = dict(recorded[ino][-1])
            entry["current_path"] = self.path(ino)
            entry["lost_ranges"] = merge_ranges(ranges)
            self.report.lost.append(entry)


def merge_plans(plan: Report, earlier: Report) -> None:
    """Add to ``plan`` the lost data an earlier pass saw (before the writable open's recovery
    re-extended a truncated pack with zeros, which a pass without --data cannot tell from data)."""
    for bid, why in earlier.bad_blocks.items():
        plan.bad_blocks.setdefault(bid, why)
    for cid, why in earlier.bad_chunks.items():
        plan.bad_chunks.setdefault(cid, why)
    for pid, size in earlier.truncated_packs.items():
        plan.truncated_packs.setdefault(pid, size)
    for pid in earlier.missing_packs:
        if pid not in plan.missing_packs:
            plan.missing_packs.append(pid)


def verify(store, *, data: bool = False, progress: Callable[[int, int], None] | None = None) -> Report:
    """Check ``store`` (open read-only or writable); returns the report."""
    return Verifier(store, data=data, progress=progress).run()


# -- repair ---------------------------------------------------------------------------------


# -- command line -------------------------------------------------------------------------


