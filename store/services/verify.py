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

The checks ask the catalog's audit domain (``store.backends.catalog.audit``) and
are grouped by what they look at: ``verify_storage`` (format, packs, blocks,
chunks), ``verify_namespace`` (file references, entries, link counts) and
``verify_sessions`` (session index, totals, JSON files, lost+found); the
findings are ``verify_report``'s.

Consistency while the store is mounted: the catalog is read in one snapshot
(a read transaction), so the checks agree with each other. Packs are
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

from collections import defaultdict
from typing import Callable, Iterable

from store.services.verify_namespace import NamespaceChecks
from store.services.verify_report import MAX_PATHS, Problem, Report, merge_ranges, ranges_text
from store.services.verify_sessions import SessionChecks
from store.services.verify_storage import StorageChecks


class Verifier(StorageChecks, NamespaceChecks, SessionChecks):
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
        for ino, off, length in self.audit.references_to(chunk_ids):
            out[ino].append((off, off + length))
        return {ino: merge_ranges(r) for ino, r in out.items()}

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
        self.audit = self.db.audit
        with self.db.snapshot():
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
        self._recheck()
        return self.report

    def _recheck(self) -> None:
        """Drop pack/block findings that background maintenance made moot meanwhile."""
        keep = []
        view = self.store.catalog.reader()
        for p in self.report.problems:
            if p.recheck is not None:
                try:
                    still = p.recheck(view)
                except Exception:  # noqa: BLE001 - keep the finding when unsure
                    still = True
                if not still:
                    continue
            keep.append(p)
        self.report.problems = keep


def verify(store, *, data: bool = False, progress: Callable[[int, int], None] | None = None) -> Report:
    """Check ``store`` (open read-only or writable); returns the report."""
    return Verifier(store, data=data, progress=progress).run()
