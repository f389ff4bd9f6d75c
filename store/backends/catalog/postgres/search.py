"""The search index in PostgreSQL (``SearchIndex``): tables ``search_docs``, ``search_parts``
(tsvector + GIN) and ``search_state``, documented in ``search_schema``; the tokens are FTS5's
(``search_vectors``), so a query finds the documents SQLite finds; the queries are in
``search_queries``.

Documents' words are stored whole (``removal_needs_text`` is False): removing one deletes
its rows, and no orphan rows exist. ``view`` is the catalog view this index belongs to: its
``cursor()`` runs in the view's transaction, if any; ``writable`` says whether it may write.
"""

from __future__ import annotations

from typing import Callable, Iterable

import psycopg

from store.backends.catalog.postgres.search_errors import index_error, message, translated_search
from store.backends.catalog.postgres.search_queries import PostgresSearchQueries
from store.backends.catalog.postgres.search_schema import (SEARCH_INDEX_VERSION, SEARCH_SEQ_MASK,
                                                          SEARCH_SESSION_SHIFT, SEARCH_TABLE_NAMES,
                                                          create_search_tables, drop_search_tables)
from store.backends.catalog.postgres.search_vectors import parts
from store.backends.catalog.search import REBUILDING, IndexedFile, SearchIndex, SearchIndexStatistics
from store.core.errors import SearchIndexError

#: Session directories beyond this inode number cannot hold documents (their ids would overflow).
MAX_SESSION_DIR = (1 << (63 - SEARCH_SESSION_SHIFT)) - 1

_DOC_COLUMNS = "id, ino, parent, name, dir_ino, path, size, extents, digest"


def _document(row) -> IndexedFile:
    doc_id, ino, parent, name, dir_ino, path, size, flat, digest = row
    return IndexedFile(doc_id, ino, parent, bytes(name), dir_ino, path, size, tuple(zip(flat[0::2], flat[1::2])),
                       bytes(digest))


@translated_search
class PostgresSearch(PostgresSearchQueries, SearchIndex):
    """``SearchIndex`` over one catalog view (the view's ``search``)."""

    removal_needs_text = False
    max_session_dir = MAX_SESSION_DIR

    def __init__(self, view):
        super().__init__(view)
        self._state_seen: tuple[int, bool] | None = None   # (view epoch, maintained) read then

    @property
    def writable(self) -> bool:
        return self._view.writable

    def _run(self, sql: str, args=()) -> None:
        self._state_seen = None
        self._view.cursor().execute(sql, args)

    # -- state ------------------------------------------------------------------------------
    def problem(self) -> str | None:
        present = self._rows("SELECT " + " AND ".join(f"to_regclass('{t}') IS NOT NULL" for t in SEARCH_TABLE_NAMES))
        if not present[0][0]:
            return "missing"
        try:
            with self._view.cursor().connection.transaction():     # a savepoint: a failure leaves the view usable
                rows = self._rows("SELECT version, state FROM search_state")
        except psycopg.Error as exc:
            return f"damaged: {message(exc)}"
        version, state = rows[0] if rows else (None, None)
        if version != SEARCH_INDEX_VERSION:
            return f"built by another version of sessionfs (index version {version}, expected " \
                   f"{SEARCH_INDEX_VERSION})"
        return None if state in ("ok", REBUILDING) else str(state or "in an unknown state")

    def statistics(self) -> SearchIndexStatistics:
        rows = self._rows("SELECT state, done, total FROM search_state")
        if not rows:
            return SearchIndexStatistics("missing")
        state, done, total = rows[0]
        return SearchIndexStatistics(state, done, total) if state == REBUILDING else SearchIndexStatistics(state)

    def maintained(self) -> bool:
        """Read once per transaction (its snapshot does not change; a rollback to a savepoint
        and this object's own writes of the state forget what it read): a commit asks before
        each file it indexes."""
        view = self._view
        if view.in_transaction and self._state_seen is not None and self._state_seen[0] == view.epoch:
            return self._state_seen[1]
        rows = self._rows("SELECT state FROM search_state")
        maintained = bool(rows) and rows[0][0] in ("ok", REBUILDING)
        if view.in_transaction:
            self._state_seen = (view.epoch, maintained)
        return maintained

    def orphans(self) -> int:
        """Always 0 (parts go with their document); reads the index's structure on the way."""
        self._rows("SELECT 1 FROM search_parts WHERE tsv @@ 'e'::tsquery LIMIT 1")
        return 0

    def integrity(self, *, full: bool) -> str | None:
        problem = self.problem()
        if problem is not None:
            return problem
        try:
            with self._view.cursor().connection.transaction():
                self.orphans()
                if full:
                    return self._full_check()
        except psycopg.Error as exc:
            return f"damaged: {message(exc)}"
        return None

    def _full_check(self) -> str | None:
        """Every part's words are read, and every document lies in its session's id range."""
        self._rows("SELECT count(*), sum(length(tsv)) FROM search_parts")
        misplaced = self._rows(f"SELECT count(*) FROM search_docs WHERE id >> {SEARCH_SESSION_SHIFT} <> dir_ino")[0][0]
        return f"damaged: {misplaced} documents lie outside their session's id range" if misplaced else None

    def mark_unusable(self, reason: str) -> None:
        self._run("UPDATE search_state SET state = %s", (reason,))

    def reset(self) -> None:
        self._state_seen = None
        cur = self._view.cursor()
        drop_search_tables(cur)
        create_search_tables(cur, REBUILDING)

    def rebuild_progress(self, done: int, total: int) -> None:
        self._run("UPDATE search_state SET done = %s, total = %s", (done, total))

    def rebuild_finished(self) -> None:
        self._run("UPDATE search_state SET state = 'ok', done = 0, total = 0")

    def optimize(self) -> None:
        """Move the GIN index's pending entries into its tree, and refresh the planner's statistics."""
        self._rows("SELECT gin_clean_pending_list('search_parts_words'::regclass)")
        self._run("ANALYZE search_docs, search_parts")

    def guarded(self, step: Callable[[], None]) -> str | None:
        cur = self._view.cursor()
        cur.execute("SAVEPOINT search_index")
        try:
            try:
                step()
            except psycopg.Error as exc:        # a statement of the caller's: classify it here
                raise index_error(exc, "search index update") from exc
        except SearchIndexError as exc:
            cur.execute("ROLLBACK TO SAVEPOINT search_index")
            cur.execute("RELEASE SAVEPOINT search_index")
            self._state_seen = None
            cur.execute("UPDATE search_state SET state = %s", (f"damaged: an update failed: {exc}",))
            return str(exc)
        except BaseException:
            # Not the index's fault (disk full, connection lost, serialization failure): the
            # caller's transaction fails as a whole and is retried.
            try:
                cur.execute("ROLLBACK TO SAVEPOINT search_index")
                cur.execute("RELEASE SAVEPOINT search_index")
            except psycopg.Error:
                pass
            raise
        cur.execute("RELEASE SAVEPOINT search_index")
        return None

    # -- documents --------------------------------------------------------------------------
    def documents_of(self, ino: int) -> list[IndexedFile]:
        return [_document(r) for r in self._rows(f"SELECT {_DOC_COLUMNS} FROM search_docs WHERE ino = %s", (ino,))]

    def indexed_at(self, parent: int, name: bytes) -> list[int]:
        return [r[0] for r in self._rows("SELECT ino FROM search_docs WHERE parent = %s AND name = %s", (parent, name))]

    def is_indexed(self, ino: int) -> bool:
        return bool(self._rows("SELECT 1 FROM search_docs WHERE ino = %s LIMIT 1", (ino,)))

    def holds_indexed(self, directory: int) -> bool:
        return bool(self._rows("SELECT 1 FROM search_docs WHERE parent = %s LIMIT 1", (directory,)))

    def add(self, ino: int, parent: int, name: bytes, session_dir: int, path: str, size: int,
            extents: list[tuple[int, int]], digest: bytes, title: str, body: str) -> int:
        if session_dir > MAX_SESSION_DIR:
            raise SearchIndexError(f"session directory inode {session_dir} is too large for a search index id")
        flat = [v for pair in extents for v in pair]
        cur = self._view.cursor()
        cur.execute(f"INSERT INTO search_docs ({_DOC_COLUMNS}) VALUES ((%s::bigint << {SEARCH_SESSION_SHIFT}) | "
                    f"(nextval('search_seq') & {SEARCH_SEQ_MASK}), %s, %s, %s, %s, %s, %s, %s::bigint[], %s) "
                    "RETURNING id", (session_dir, ino, parent, name, session_dir, path, size, flat, digest))
        doc_id = cur.fetchone()[0]
        vectors = parts(title, body)
        if vectors:
            cur.execute("INSERT INTO search_parts (doc, part, tsv) SELECT %s, n, setweight(v::tsvector, w::\"char\") "
                        "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p(v, w, n)",
                        (doc_id, [v for v, _ in vectors], [w for _, w in vectors]))
        return doc_id

    def remove(self, doc: IndexedFile, text: tuple[str, str] | None) -> None:
        self._run("DELETE FROM search_docs WHERE id = %s", (doc.id,))

    def document(self, doc_id: int) -> IndexedFile | None:
        rows = self._rows(f"SELECT {_DOC_COLUMNS} FROM search_docs WHERE id = %s", (doc_id,))
        return _document(rows[0]) if rows else None

    def paths(self, doc_ids: Iterable[int]) -> dict[int, str]:
        return dict(self._rows("SELECT id, path FROM search_docs WHERE id = ANY(%s)", (list(doc_ids),)))
