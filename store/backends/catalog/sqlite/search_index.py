"""The full-text search index, kept in step with the files.

The index (tables ``search_docs`` and ``search_fts``, documented in
``schema.create_tables``) holds one FTS5 row per indexed file of a session, with
the text ``text_index.extract`` gives for it. ``TextIndex`` keeps it in step with
the tree from inside the store's write transactions: ``content_changed`` when a
file's bytes commit, ``namespace_changed`` when names are created, renamed or
removed, so a search never sees a file's new bytes without its new rows, or the
reverse. It also checks the index at a writable open and, when it is missing,
outdated or damaged, rebuilds it from the files in a background thread while the
store serves (``sessionfs reindex`` rebuilds it on demand, in the foreground):
the tables are recreated empty in state ``rebuilding``, from then on every commit
indexes what it changes, and the thread indexes the session directories in short
write transactions, skipping files a commit has indexed meanwhile. Searches answer
from what is indexed so far; ``statistics()`` and the CLI say that it is rebuilding.

Size. One FTS row per file, rowids ``dir_ino << 32 | seq`` (one session = one rowid
range: session-level AND/NOT and probes need no join). For 10,000 generated
"small" sessions (270 MB of indexed text, a 490 MB store) the index takes about
220 MB, of which the per-file bookkeeping (``search_docs``) is 7 MB; the text
itself is not stored twice (the FTS table is contentless).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import orjson

from store.backends.catalog.rows import ChunkLocation
from store.backends.catalog.sqlite.search_text import TextCache, content_digest, pack_extents, unpack_extents
from store.backends.catalog.sqlite.schema import (SEARCH_INDEX_VERSION, SEARCH_SESSION_SHIFT, create_search_tables,
                                                  has_table)
from store.core.errors import StoreError
from store.core.text_index import columns, extract, indexed_path, iter_text

log = logging.getLogger("sessionfs.search")

#: Bytes (roughly) of extracted text kept in memory per process, for deletes and snippets.
TEXT_CACHE_BYTES = 32 * 1024 * 1024


_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000
#: Sessions per transaction when rebuilding, at most.
REBUILD_BATCH = 100
#: A background rebuild ends its write transaction after about this long (commits wait no longer).
REBUILD_BATCH_SECONDS = 0.05
#: ... and pauses this long between transactions, so waiting writers take the lock first.
REBUILD_PAUSE = 0.005
#: meta ``search_state`` while the index is being rebuilt: usable, holding what is indexed so far.
REBUILDING = "rebuilding"
CHUNK_DIRS = ("screenshots", "audio-segments")
_CHUNK_DIR_NAMES = frozenset(d.encode() for d in CHUNK_DIRS)
SEQ_MASK = (1 << SEARCH_SESSION_SHIFT) - 1
_MAX_DIR_INO = (1 << (63 - SEARCH_SESSION_SHIFT)) - 1


class IndexUnavailableError(StoreError):
    """The search index cannot be used (missing, outdated, damaged); the message says how to fix it."""


# extents: (off, length, chunk_id, hash, block_id, block_off), in file order
_EXTENTS_SQL = ("SELECT f.off, c.length, c.id, c.hash, c.block_id, c.block_off FROM file_chunks f "
                "JOIN chunks c ON c.id = f.chunk_id WHERE f.ino = ? ORDER BY f.off")


@dataclass(frozen=True)
class SearchIndexStatistics:
    """``state``: ``ok``, ``rebuilding`` (searches answer from what is indexed so far) or why
    the index cannot be used; while rebuilding, ``sessions_done`` of ``sessions_total``
    session directories have been indexed (commits meanwhile index themselves)."""
    state: str
    sessions_done: int = 0
    sessions_total: int = 0


@dataclass
class RebuildReport:
    sessions: int
    files: int
    seconds: float
    reason: str | None = None


def _hook(point: str) -> None:
    """Test hook (tests replace it): the background rebuild calls it after each transaction."""


class TextIndex:
    """The full-text index of one open store (``store.text_index``)."""

    def __init__(self, store):
        self.store = store
        self.sessions_ino = store.sessions_ino
        self.cache = TextCache(TEXT_CACHE_BYTES)
        #: The report of the background rebuild started at open, once it has finished.
        self.rebuilt_at_open: RebuildReport | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        reader = store.catalog.reader()
        #: Why the index cannot be used (None: it can). Searches refuse; a writable open rebuilds.
        self.problem = self._state(reader)
        #: Whether search_fts holds rows without a search_docs row (old versions whose delete
        #: failed): searches then join search_docs to skip them; a writable open rebuilds.
        self.garbage = False
        if self.problem is None:
            try:
                self.garbage = self._garbage_rows(reader) != 0
            except sqlite3.DatabaseError as exc:
                self.problem = f"damaged: {exc}"

    def statistics(self) -> SearchIndexStatistics:
        """The index's state and a rebuild's progress (two rows of meta: O(1))."""
        if self.problem is not None:
            return SearchIndexStatistics(self.problem)
        meta = dict(self.store.catalog.reader().execute(
            "SELECT key, value FROM meta WHERE key IN ('search_state', 'search_rebuild')").fetchall())
        state = str(meta.get("search_state") or "missing")
        if state != REBUILDING:
            return SearchIndexStatistics(state)
        progress = json.loads(meta.get("search_rebuild") or "{}")
        return SearchIndexStatistics(state, progress.get("done", 0), progress.get("total", 0))

    # -- state ------------------------------------------------------------------------
    @staticmethod
    def _state(db) -> str | None:
        try:
            if not (has_table(db, "search_docs") and has_table(db, "search_fts")):
                return "missing"
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                                   "('search_version', 'search_state')").fetchall())
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        version = meta.get("search_version")
        if str(version) != str(SEARCH_INDEX_VERSION):
            return f"built by another version of sessionfs (index version {version}, expected " \
                   f"{SEARCH_INDEX_VERSION})"
        state = meta.get("search_state")
        return None if state in ("ok", REBUILDING) else str(state or "in an unknown state")

    @staticmethod
    def _garbage_rows(db) -> int:
        """FTS rows without a search_docs row; also makes FTS5 load its configuration and
        segment structure and look a term up (a cheap check that the index can be read)."""
        db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH '\"e\"' LIMIT 1").fetchall()
        docs = db.execute("SELECT count(*) FROM search_docs").fetchone()[0]
        return db.execute("SELECT count(*) FROM search_fts_docsize").fetchone()[0] - docs

    def damaged(self, exc: BaseException) -> IndexUnavailableError:
        """An error reading the index: mark it for rebuild (when this store may write) and
        return the error to raise."""
        reason = f"damaged: {' '.join(str(exc).split())}"
        log.error("search index of %s is %s", self.store.root, reason)
        if not self.store.readonly:
            try:
                with self.store.catalog.write() as db:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)", (reason,))
            except sqlite3.DatabaseError:
                pass
        self.problem = reason
        return IndexUnavailableError(
            f"the search index of {self.store.root} is {reason}; it is rebuilt when the store is next opened "
            f"for writing (mount), or now with 'sessionfs reindex {self.store.root}'")

    def check(self, db: sqlite3.Connection, *, full: bool = False) -> str | None:
        """None when the index is usable and clean; else what is wrong (missing, outdated,
        damaged, holding garbage). ``full`` also runs FTS5's integrity-check over the whole
        index (reads all of it); ``db`` must then be a connection that may write (nothing is
        changed: the check runs in a savepoint that is rolled back)."""
        problem = self._state(db)
        if problem is not None:
            return problem
        try:
            garbage = self._garbage_rows(db)
            if garbage:
                return f"damaged: {garbage} rows in search_fts belong to no indexed file"
            if full:
                db.execute("SAVEPOINT search_check")
                try:
                    db.execute("INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 0)")
                finally:
                    db.execute("ROLLBACK TO search_check")
                    db.execute("RELEASE search_check")
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        return None

    def rebuild_if_needed(self) -> None:
        """At a writable open: rebuild a missing, outdated or damaged index in the background
        (searches answer from what is indexed so far and say so), or finish a rebuild that an
        earlier process left unfinished."""
        reason = self.problem or ("holding rows of old file versions" if self.garbage else None)
        if reason is None:
            if self.statistics().state == REBUILDING:
                log.warning("search index of %s: resuming an interrupted rebuild", self.store.root)
                self._start_worker("interrupted")
            return
        log.warning("search index of %s is %s: rebuilding it from the files in the background",
                    self.store.root, reason)
        try:
            self._begin_rebuild()
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._failed(reason, exc)
            return
        self._start_worker(reason)

    def _failed(self, reason: str, exc: BaseException) -> None:
        # The store stays usable; only searching is refused until a rebuild succeeds.
        self.problem = f"{reason}, and rebuilding it failed: {exc}"
        log.error("search index of %s could not be rebuilt (%s); searches are refused until "
                  "'sessionfs reindex' succeeds", self.store.root, exc)

    def _start_worker(self, reason: str) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._background, args=(reason,), name="search-rebuild",
                                        daemon=True)
        self._worker.start()

    def _background(self, reason: str) -> None:
        total = [0]

        def progress(n: int) -> None:
            before = total[0]
            total[0] += n
            if total[0] // 1000 > before // 1000:
                log.info("search index rebuild: %d sessions done", total[0])
        try:
            report = self._fill(progress, reason=reason, background=True)
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._failed(reason, exc)
            return
        if report is not None:
            log.warning("search index rebuilt: %d files of %d sessions in %.1f s", report.files, report.sessions,
                        report.seconds)
            self.rebuilt_at_open = report

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to end; False if it still runs after ``timeout`` s."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def stop(self) -> None:
        """Stop a background rebuild between two transactions (the next writable open resumes it)."""
        self._stop.set()
        self.wait()
        self._worker = None
        self._stop.clear()

    def _active(self, db) -> bool:
        if self.problem is not None:
            return False
        row = db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()
        return row is not None and row[0] in ("ok", REBUILDING)

    def _guarded(self, db, fn, *args) -> None:
        """Run a maintenance step; an index error marks the index for rebuild instead of
        failing the commit of the files (which matter more than their index)."""
        if not self._active(db):
            return
        db.execute("SAVEPOINT search_index")
        try:
            fn(db, *args)
        except sqlite3.DatabaseError as exc:
            db.execute("ROLLBACK TO search_index")
            db.execute("RELEASE search_index")
            log.error("search index update failed (%s); searches are refused until it is rebuilt at the "
                      "next open or by 'sessionfs reindex'", exc)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)",
                       (f"damaged: an update failed: {exc}",))
            return
        db.execute("RELEASE search_index")

    # -- hooks (inside the store's write transaction) -----------------------------------
    def content_changed(self, db, ino: int) -> None:
        """The committed bytes of ``ino`` changed."""
        self._guarded(db, self._refresh_inode, ino, True)

    def namespace_changed(self, db, entries: Iterable[tuple[int, bytes]], moved: Iterable[int]) -> None:
        """The names ``entries`` (parent, name) were created, removed or replaced; ``moved`` are
        inodes that gained or lost a name (files, or directories whose whole subtree moved)."""
        entries, moved = set(entries), set(moved)
        if entries or moved:
            self._guarded(db, self._namespace_changed, entries, moved)

    def _namespace_changed(self, db, entries: set[tuple[int, bytes]], moved: set[int]) -> None:
        done: set[int] = set()
        for parent, name in entries:
            for (ino,) in db.execute("SELECT ino FROM search_docs WHERE parent = ? AND name = ?",
                                     (parent, name)).fetchall():
                if ino in done:
                    continue
                now = db.execute("SELECT ino FROM dentries WHERE parent = ? AND name = ?", (parent, name)).fetchone()
                if now is None or now[0] != ino:
                    done.add(ino)
                    self._refresh_inode(db, ino, False)
        for ino in moved - done:
            row = db.execute("SELECT mode FROM inodes WHERE id = ?", (ino,)).fetchone()
            if row is not None and row[0] & _S_IFMT == _S_IFDIR:
                for child in self._files_below(db, ino):
                    if child not in done:
                        done.add(child)
                        self._refresh_inode(db, child, False)
            else:
                done.add(ino)
                self._refresh_inode(db, ino, False)

    def _files_below(self, db, ino: int) -> list[int]:
        """Files whose index rows may change when directory ``ino`` moves: indexed files are at
        most one directory below a session directory, so its files, and those of its
        subdirectories that are chunk directories or hold indexed files."""
        files = []
        for name, child, mode in self._children(db, ino):
            if mode & _S_IFMT == _S_IFREG:
                files.append(child)
            elif mode & _S_IFMT == _S_IFDIR and (
                    bytes(name) in _CHUNK_DIR_NAMES
                    or db.execute("SELECT 1 FROM search_docs WHERE parent = ? LIMIT 1", (child,)).fetchone()):
                files.extend(c for _, c, m in self._children(db, child) if m & _S_IFMT == _S_IFREG)
        return files

    @staticmethod
    def _children(db, ino: int) -> list[tuple[bytes, int, int]]:
        return db.execute("SELECT d.name, d.ino, i.mode FROM dentries d JOIN inodes i ON i.id = d.ino "
                          "WHERE d.parent = ?", (ino,)).fetchall()

    # -- one file ---------------------------------------------------------------------
    def _session_dir_of(self, db, directory: int) -> tuple[int, tuple[str, ...]] | None:
        """(session directory, path from it to ``directory``) when ``directory`` is a session
        directory or one of its direct subdirectories (indexed files are no deeper)."""
        if directory == self.sessions_ino:
            return None
        parts: list[str] = []
        current = directory
        for _ in range(2):
            row = db.execute("SELECT parent, name FROM dentries WHERE ino = ? LIMIT 1", (current,)).fetchone()
            if row is None:
                return None
            if row[0] == self.sessions_ino:
                return current, tuple(reversed(parts))
            try:
                parts.append(bytes(row[1]).decode("utf-8"))
            except UnicodeDecodeError:
                return None
            current = row[0]
        return None

    def _locations(self, db, ino: int) -> dict[tuple[int, bytes], tuple[int, str]]:
        """{(parent, name): (session dir, path inside it)} for each indexed name of ``ino``."""
        out = {}
        for parent, name in db.execute("SELECT parent, name FROM dentries WHERE ino = ?", (ino,)).fetchall():
            where = self._session_dir_of(db, parent)
            if where is None:
                continue
            try:
                path = "/".join((*where[1], bytes(name).decode("utf-8")))
            except UnicodeDecodeError:
                continue
            if indexed_path(path) and where[0] <= _MAX_DIR_INO:
                out[(parent, bytes(name))] = (where[0], path)
        return out

    def _refresh_inode(self, db, ino: int, content_changed: bool) -> int:
        """Make the rows of ``ino`` match its names and content; returns rows inserted."""
        existing = db.execute("SELECT id, parent, name, dir_ino, path, size, extents, digest FROM search_docs "
                              "WHERE ino = ?", (ino,)).fetchall()
        wanted = self._locations(db, ino)
        if not content_changed and {(r[1], bytes(r[2])): (r[3], r[4]) for r in existing} == wanted:
            return 0
        for row in existing:
            self._delete_row(db, row)
        if not wanted:
            return 0
        node = db.execute("SELECT mode, size FROM inodes WHERE id = ?", (ino,)).fetchone()
        if node is None or node[0] & _S_IFMT != _S_IFREG or node[1] == 0:
            return 0
        size = node[1]
        extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
        digest = content_digest(size, extents)
        parsed = None
        inserted = 0
        for (parent, name), (dir_ino, path) in wanted.items():
            rows = self.cache.rows((digest, path))
            if rows is None:
                if parsed is None:
                    parsed = self._parse(db, ino, size, extents, path)
                if parsed is _INVALID:
                    return inserted
                rows = extract(path, parsed)
                self.cache.put((digest, path), rows)
            if not rows:
                continue
            seq = db.execute("UPDATE meta SET value = value + 1 WHERE key = 'search_seq' RETURNING value").fetchone()
            rowid = (dir_ino << SEARCH_SESSION_SHIFT) | (int(seq[0]) & SEQ_MASK)
            db.execute("INSERT INTO search_docs (id, ino, parent, name, dir_ino, path, size, extents, digest) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (rowid, ino, parent, name, dir_ino, path, size, pack_extents(extents), digest))
            title, body = columns(rows)
            db.execute("INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", (rowid, title, body))
            inserted += 1
        return inserted

    def _parse(self, db, ino: int, size: int, extents: list, path: str, *, indexing: bool = True):
        try:
            data = self._assemble(db, size, extents)
        except StoreError as exc:
            if not indexing:        # a snippet: the caller goes without
                raise
            log.error("search index: %s cannot be read (%s); it is not indexed until rewritten",
                      self.store.catalog.path_of(ino, db) or path, exc)
            return _INVALID
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return _INVALID      # stored as written, simply not indexed

    def _assemble(self, db, size: int, extents: list) -> bytes:
        out = bytearray(size)
        for off, length, chunk_id, digest, block_id, block_off in extents:
            if off >= size:
                continue
            data = self.store.chunk_bytes(ChunkLocation(off, length, chunk_id, bytes(digest), block_id, block_off),
                                           None, db)
            end = min(size, off + length)
            out[off:end] = data[:end - off]
        return bytes(out)

    def _delete_row(self, db, row) -> None:
        rowid, _, _, _, path, size, blob, digest = row
        digest = bytes(digest)
        rows = self.cache.rows((digest, path))
        if rows is None:
            rows = self._old_rows(db, rowid, path, size, blob, digest)
        if rows is not None:
            title, body = columns(rows)
            db.execute("INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', ?, ?, ?)",
                       (rowid, title, body))
        db.execute("DELETE FROM search_docs WHERE id = ?", (rowid,))

    def _old_rows(self, db, rowid: int, path: str, size: int, blob: bytes, digest: bytes):
        """The rows indexed for an entry, re-derived from the chunks it was built from."""
        pairs = unpack_extents(bytes(blob))
        found = {r[0]: r for r in db.execute(
            "SELECT id, length, hash, block_id, block_off FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([cid for _, cid in pairs]),))}
        try:
            extents = [(off, found[cid][1], cid, bytes(found[cid][2]), found[cid][3], found[cid][4])
                       for off, cid in pairs]
        except KeyError:
            extents = None
        if extents is not None and content_digest(size, extents) == digest:
            try:
                rows = extract(path, orjson.loads(self._assemble(db, size, extents)))
                return rows
            except (StoreError, orjson.JSONDecodeError) as exc:
                reason = str(exc)
        else:
            reason = "its chunks are gone"
        # The FTS row stays as garbage under a rowid that is never reused: searches join
        # search_docs and never see it; the count check at the next open rebuilds the index.
        self.garbage = True
        log.warning("search index: the old text of %s (row %d) cannot be re-read (%s); its entries stay "
                    "as garbage until the index is rebuilt", path, rowid, reason)
        return None

    # -- rebuild --------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[int], None] | None = None, *, reason: str | None = None) -> RebuildReport:
        """Drop the index and rebuild it from the files now (``sessionfs reindex``).
        ``progress(n)`` after each n sessions."""
        self.stop()
        self._begin_rebuild()
        report = self._fill(progress, reason=reason)
        with self.store.catalog.write() as db:
            db.execute("INSERT INTO search_fts (search_fts) VALUES ('optimize')")
        return report

    def _begin_rebuild(self) -> None:
        """Replace the index by empty tables in state REBUILDING: from this commit on, every
        commit indexes what it changes (the hooks run), and ``_fill`` indexes the rest."""
        with self.store.catalog.write() as db:
            _drop_search_tables(db)
            create_search_tables(db)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("search_state", REBUILDING), ("search_rebuild", json.dumps({"done": 0, "total": 0}))])
        self.problem, self.garbage = None, False

    def _fill(self, progress: Callable[[int], None] | None, *, reason: str | None,
              background: bool = False) -> RebuildReport | None:
        """Index every session directory (a list taken now) in short write transactions, then
        set the state ``ok``. A file that already has rows was indexed by a commit since the
        rebuild began (the rows are current) and is skipped; a session made after the list
        was taken is indexed by its own commits. Returns None when stopped, or when the state
        stopped being REBUILDING (an index update failed meanwhile: the next open rebuilds)."""
        started = time.monotonic()
        catalog = self.store.catalog
        sessions = [r[0] for r in catalog.reader().execute(
            "SELECT ino FROM dentries WHERE parent = ? ORDER BY rowid", (self.sessions_ino,))]
        files, done = 0, 0
        while True:
            if self._stop.is_set():
                return None
            with catalog.write() as db:
                if db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()[0] != REBUILDING:
                    log.error("search index of %s: the rebuild stops, the index is no longer being rebuilt",
                              self.store.root)
                    return None
                start, deadline = done, time.monotonic() + REBUILD_BATCH_SECONDS
                while done < len(sessions) and done - start < REBUILD_BATCH and (
                        not background or done == start or time.monotonic() < deadline):
                    for ino in self._session_files(db, sessions[done]):
                        if not db.execute("SELECT 1 FROM search_docs WHERE ino = ? LIMIT 1", (ino,)).fetchone():
                            files += self._refresh_inode(db, ino, True)
                    done += 1
                finished = done == len(sessions)
                if finished:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', 'ok')")
                    db.execute("DELETE FROM meta WHERE key = 'search_rebuild'")
                else:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_rebuild', ?)",
                               (json.dumps({"done": done, "total": len(sessions)}),))
            if progress is not None and done > start:
                progress(done - start)
            if finished:
                return RebuildReport(len(sessions), files, time.monotonic() - started, reason)
            _hook("batch")
            if background:
                time.sleep(REBUILD_PAUSE)

    def _session_files(self, db, dir_ino: int) -> list[int]:
        out = []
        for name, ino, mode in self._children(db, dir_ino):
            if mode & _S_IFMT == _S_IFREG:
                out.append(ino)
            elif mode & _S_IFMT == _S_IFDIR and bytes(name) in _CHUNK_DIR_NAMES:
                out.extend(c for _, c, m in self._children(db, ino) if m & _S_IFMT == _S_IFREG)
        return out

    # -- text of an indexed row (snippets) ---------------------------------------------------
    def rows_of(self, db, rowid: int, *, lazy: bool = False) -> tuple[str, Iterable[tuple[str, str]]] | None:
        """(path, extracted rows) of index row ``rowid`` as read in ``db``'s snapshot; ``lazy``:
        the rows as an iterator in document order, when the caller stops at the first hit."""
        row = db.execute("SELECT ino, path, size, extents, digest FROM search_docs WHERE id = ?",
                         (rowid,)).fetchone()
        if row is None:
            return None
        ino, path, size, blob, digest = row
        rows = self.cache.rows((bytes(digest), path))
        if rows is None:
            extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
            parsed = self._parse(db, ino, size, extents, path, indexing=False)
            if parsed is _INVALID:
                return path, []
            if lazy:
                return path, iter_text(path, parsed, joined=True)
            rows = extract(path, parsed)
            self.cache.put((bytes(digest), path), rows)
        return path, rows


_INVALID = object()


def unindexed_files(store) -> list[str]:
    """Paths of the files the index would read (``text_index.indexed_path``) whose bytes are
    not valid JSON, so they hold no index rows: stored as written, for ``verify`` to report."""
    db = store.catalog.reader()
    index = store.text_index
    out = []
    for (dir_ino,) in db.execute("SELECT ino FROM dentries WHERE parent = ? ORDER BY rowid",
                                 (store.sessions_ino,)).fetchall():
        for ino in index._session_files(db, dir_ino):
            if db.execute("SELECT 1 FROM search_docs WHERE ino = ? LIMIT 1", (ino,)).fetchone():
                continue
            where = index._locations(db, ino)
            if not where:
                continue
            size = db.execute("SELECT size FROM inodes WHERE id = ?", (ino,)).fetchone()[0]
            extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
            try:
                orjson.loads(index._assemble(db, size, extents))
            except orjson.JSONDecodeError:
                out.append(store.catalog.path_of(ino, db) or next(iter(where.values()))[1])
            except StoreError:
                continue            # unreadable: verify reports damaged data on its own
    return out


def _drop_search_tables(db) -> None:
    try:
        db.execute("DROP TABLE IF EXISTS search_fts")
    except sqlite3.DatabaseError as exc:
        # FTS5 must load a table to drop it; give a damaged one back the configuration row it
        # checks first, then drop it (xDestroy drops its shadow tables whatever they hold).
        log.warning("dropping the damaged search_fts table: %s", exc)
        db.execute("CREATE TABLE IF NOT EXISTS search_fts_config (k PRIMARY KEY, v) WITHOUT ROWID")
        db.execute("INSERT OR REPLACE INTO search_fts_config (k, v) VALUES ('version', 4)")
        db.execute("DROP TABLE IF EXISTS search_fts")
    db.execute("DROP TABLE IF EXISTS search_docs")
