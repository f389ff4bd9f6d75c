"""The search index in SQLite (``SearchIndex``): tables ``search_docs`` and ``search_fts``
(FTS5, contentless), documented in ``schema.create_tables``; the queries are in
``search_queries``.

Document ids are ``session dir << SEARCH_SESSION_SHIFT | seq`` (the FTS rowid), with
``seq`` from meta ``search_seq``: one session is one rowid range. The FTS table does not
store the text, so removing a document needs the text it was indexed with
(``removal_needs_text``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
from typing import Callable, Iterable

from store.backends.catalog.search import REBUILDING, IndexedFile, SearchIndex, SearchIndexStatistics
from store.backends.catalog.sqlite.schema import (INCREMENTAL_VACUUM, SEARCH_INDEX_VERSION, SEARCH_SEQ_MASK,
                                                  SEARCH_SESSION_SHIFT, create_search_tables, has_table)
from store.backends.catalog.sqlite.search_errors import index_error, translated_search
from store.backends.catalog.sqlite.search_queries import SqliteSearchQueries
from store.core.errors import SearchIndexError

log = logging.getLogger("sessionfs.search")

#: Session directories beyond this inode number cannot hold documents (their ids would overflow).
MAX_SESSION_DIR = (1 << (63 - SEARCH_SESSION_SHIFT)) - 1

#: The index is compacted again (``tidy_step``) when this share of its documents, and at least
#: TIDY_MIN_DOCS, were added since the last time.
TIDY_SHARE = 0.25
TIDY_MIN_DOCS = 200

_DOC_COLUMNS = "id, ino, parent, name, dir_ino, path, size, extents, digest"


def _pack_extents(extents: Iterable[tuple[int, int]]) -> bytes:
    flat = [v for pair in extents for v in pair]
    return struct.pack(f"<{len(flat)}q", *flat)


def unpack_extents(blob: bytes) -> tuple[tuple[int, int], ...]:
    """The (offset, chunk id) pairs of a ``search_docs.extents`` value."""
    flat = struct.unpack(f"<{len(blob) // 8}q", blob)
    return tuple(zip(flat[0::2], flat[1::2]))


def _document(row) -> IndexedFile:
    rowid, ino, parent, name, dir_ino, path, size, blob, digest = row
    return IndexedFile(rowid, ino, parent, bytes(name), dir_ino, path, size, unpack_extents(bytes(blob)),
                       bytes(digest))


@translated_search
class SqliteSearch(SqliteSearchQueries, SearchIndex):
    """``SearchIndex`` over one connection (``SqliteView.search``)."""

    removal_needs_text = True
    max_session_dir = MAX_SESSION_DIR

    def __init__(self, db: sqlite3.Connection, *, writable: bool):
        super().__init__(db)
        self.writable = writable

    # -- state ------------------------------------------------------------------------------
    def problem(self) -> str | None:
        db = self._db
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

    def statistics(self) -> SearchIndexStatistics:
        meta = dict(self._db.execute(
            "SELECT key, value FROM meta WHERE key IN ('search_state', 'search_rebuild')").fetchall())
        state = str(meta.get("search_state") or "missing")
        if state != REBUILDING:
            return SearchIndexStatistics(state)
        progress = json.loads(meta.get("search_rebuild") or "{}")
        return SearchIndexStatistics(state, progress.get("done", 0), progress.get("total", 0))

    def maintained(self) -> bool:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()
        return row is not None and row[0] in ("ok", REBUILDING)

    def orphans(self) -> int:
        return self._orphans()

    def _orphans(self) -> int:
        db = self._db
        db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH '\"e\"' LIMIT 1").fetchall()
        docs = db.execute("SELECT count(*) FROM search_docs").fetchone()[0]
        return db.execute("SELECT count(*) FROM search_fts_docsize").fetchone()[0] - docs

    def integrity(self, *, full: bool) -> str | None:
        problem = self.problem()
        if problem is not None:
            return problem
        try:
            orphans = self._orphans()
            if orphans:
                return f"damaged: {orphans} rows in search_fts belong to no indexed file"
            if full:
                self._integrity_check()
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        return None

    def _integrity_check(self) -> None:
        """FTS5's integrity-check is an INSERT in form: run it where writing is allowed, undone
        (a read view checks on a connection of its own: it works beside a mount)."""
        check = "INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 0)"
        if self.writable:
            self._db.execute("SAVEPOINT search_check")
            try:
                self._db.execute(check)
            finally:
                self._db.execute("ROLLBACK TO search_check")
                self._db.execute("RELEASE search_check")
            return
        path = next(row[2] for row in self._db.execute("PRAGMA database_list") if row[1] == "main")
        db = sqlite3.connect(path, isolation_level=None, timeout=60)
        try:
            db.execute("BEGIN")
            try:
                db.execute(check)
            finally:
                db.execute("ROLLBACK")
        finally:
            db.close()

    def mark_unusable(self, reason: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)", (reason,))

    def reset(self) -> None:
        db = self._db
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
        create_search_tables(db)
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       [("search_state", REBUILDING), ("search_rebuild", json.dumps({"done": 0, "total": 0}))])

    def rebuild_progress(self, done: int, total: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_rebuild', ?)",
                         (json.dumps({"done": done, "total": total}),))

    def rebuild_finished(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', 'ok')")
        self._db.execute("DELETE FROM meta WHERE key = 'search_rebuild'")

    def optimize(self) -> None:
        self._db.execute("INSERT INTO search_fts (search_fts) VALUES ('optimize')")

    def tidy_step(self, budget: int) -> bool:
        """FTS5's incremental optimize (``merge`` with a negative page count) once documents
        added since the last one reach TIDY_SHARE of the index: merged segments drop the
        positions of removed and rewritten files and their per-segment overhead. Not in a
        catalog made before auto-vacuum: it could not give the old segments' pages back, and
        the file would grow by what the merge writes."""
        db = self._db
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL_VACUUM:
            return False
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('search_seq', 'search_tidied')"))
        seq, tidied = int(meta.get("search_seq", 0)), int(meta.get("search_tidied", 0))
        added = seq - tidied if tidied <= seq else seq
        if added < max(TIDY_MIN_DOCS, TIDY_SHARE * db.execute("SELECT count(*) FROM search_docs").fetchone()[0]):
            return False
        before = db.total_changes
        db.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('merge', ?)", (-budget,))
        if db.total_changes - before >= 2:          # FTS5's way of saying that it merged something
            return True
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_tidied', ?)", (seq,))
        return False

    def guarded(self, step: Callable[[], None]) -> str | None:
        db = self._db
        db.execute("SAVEPOINT search_index")
        try:
            try:
                step()
            except sqlite3.Error as exc:        # a statement of the caller's: classify it here
                raise index_error(exc, "search index update") from exc
        except SearchIndexError as exc:
            db.execute("ROLLBACK TO search_index")
            db.execute("RELEASE search_index")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)",
                       (f"damaged: an update failed: {exc}",))
            return str(exc)
        except BaseException:
            # Not the index's fault (disk full, busy, ...): the caller's transaction fails as a
            # whole and is retried; the savepoint goes with it if it cannot be undone here.
            try:
                db.execute("ROLLBACK TO search_index")
                db.execute("RELEASE search_index")
            except sqlite3.Error:
                pass
            raise
        db.execute("RELEASE search_index")
        return None

    # -- documents --------------------------------------------------------------------------
    def documents_of(self, ino: int) -> list[IndexedFile]:
        return [_document(r) for r in self._db.execute(
            f"SELECT {_DOC_COLUMNS} FROM search_docs WHERE ino = ?", (ino,)).fetchall()]

    def indexed_at(self, parent: int, name: bytes) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT ino FROM search_docs WHERE parent = ? AND name = ?",
                                               (parent, name)).fetchall()]

    def is_indexed(self, ino: int) -> bool:
        return self._db.execute("SELECT 1 FROM search_docs WHERE ino = ? LIMIT 1", (ino,)).fetchone() is not None

    def holds_indexed(self, directory: int) -> bool:
        return self._db.execute("SELECT 1 FROM search_docs WHERE parent = ? LIMIT 1",
                                (directory,)).fetchone() is not None

    def add(self, ino: int, parent: int, name: bytes, session_dir: int, path: str, size: int,
            extents: list[tuple[int, int]], digest: bytes, title: str, body: str) -> int:
        db = self._db
        if session_dir > MAX_SESSION_DIR:
            raise SearchIndexError(f"session directory inode {session_dir} is too large for a search index id")
        seq = db.execute("UPDATE meta SET value = value + 1 WHERE key = 'search_seq' RETURNING value").fetchone()
        rowid = (session_dir << SEARCH_SESSION_SHIFT) | (int(seq[0]) & SEARCH_SEQ_MASK)
        db.execute(f"INSERT INTO search_docs ({_DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (rowid, ino, parent, name, session_dir, path, size, _pack_extents(extents), digest))
        db.execute("INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", (rowid, title, body))
        return rowid

    def remove(self, doc: IndexedFile, text: tuple[str, str] | None) -> None:
        if text is not None:
            self._db.execute("INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', ?, ?, ?)",
                             (doc.id, *text))
        self._db.execute("DELETE FROM search_docs WHERE id = ?", (doc.id,))

    def document(self, doc_id: int) -> IndexedFile | None:
        row = self._db.execute(f"SELECT {_DOC_COLUMNS} FROM search_docs WHERE id = ?", (doc_id,)).fetchone()
        return _document(row) if row is not None else None

    def paths(self, doc_ids: Iterable[int]) -> dict[int, str]:
        return dict(self._db.execute("SELECT id, path FROM search_docs WHERE id IN (SELECT value FROM json_each(?))",
                                     (json.dumps(list(doc_ids)),)))
