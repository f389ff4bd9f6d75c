"""The query operations of the SQLite search index: FTS5 MATCH with bm25 ranking
(``rank``, configured ``bm25(4.0, 1.0)``), per session through the rowid ranges, and the
sessions' structured fields as filters."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from typing import Iterable, Iterator

from store.backends.catalog.search import Filters
from store.backends.catalog.sqlite.schema import SEARCH_SEQ_MASK, SEARCH_SESSION_SHIFT
from store.backends.catalog.sqlite.search_errors import translated_search
from store.core.query import Clause

#: Searches read the catalog memory-mapped (address space, not memory: pages are the OS's cache).
MMAP_BYTES = 1 << 30


def filter_sql(filters: Filters) -> tuple[list[str], list]:
    """(conditions on ``sessions s``, their arguments) that ``filters`` makes."""
    where, args = [], []
    if filters.statuses:
        where.append(f"s.status IN ({', '.join('?' * len(filters.statuses))})")
        args.extend(filters.statuses)
    if filters.after is not None:
        where.append("s.start_time >= ?")
        args.append(filters.after)
    if filters.before is not None:
        where.append("s.start_time < ?" if filters.before[1] else "s.start_time <= ?")
        args.append(filters.before[0])
    for tag in filters.tags:
        where.append("EXISTS (SELECT 1 FROM session_tags t WHERE t.tag = ? AND t.session_id = s.id)")
        args.append(tag)
    for topic in filters.topics:
        where.append("EXISTS (SELECT 1 FROM session_topics t WHERE t.topic_id = ? AND t.session_id = s.id)")
        args.append(topic)
    return where, args


def _next_day(day: str) -> str:
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except ValueError:
        return day          # an empty range


def _limit(limit: int | None) -> int:
    return -1 if limit is None else limit


@translated_search
class SqliteSearchQueries:
    """The query half of ``SqliteSearch`` (see ``SearchIndex`` for each operation)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._mapped = False

    def prepare_for_queries(self) -> None:
        if not self._mapped:
            self._db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")     # index pages straight from the page cache
            self._mapped = True

    @staticmethod
    def _fts(skip_orphans: bool) -> str:
        # Orphan rows (left by a removal that failed) have no search_docs row: join only then.
        return "search_fts f JOIN search_docs d ON d.id = f.rowid" if skip_orphans else "search_fts f"

    def count_upto(self, clause: Clause, cap: int, *, skip_orphans: bool) -> tuple[int, float]:
        """Beyond what was counted, the total is extrapolated from how far into the rowid space
        (sessions in creation order) the matches reach: free, and close enough to plan."""
        n, last = self._db.execute(f"SELECT count(*), max(rowid) FROM (SELECT f.rowid FROM {self._fts(skip_orphans)} "
                                   "WHERE search_fts MATCH ? LIMIT ?)", (clause.fts(), cap + 1)).fetchone()
        if n <= cap:
            return n, float(n)
        low, high = self._db.execute("SELECT (SELECT min(id) FROM search_docs), "      # each one O(log n)
                                     "(SELECT max(id) FROM search_docs)").fetchone()
        covered = (last - low) / (high - low) if high is not None and high > low else 1.0
        return n, max(n / max(covered, 1e-9), n + 0.5)     # never equal to n: not exact

    def best_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, tuple[float, int]]:
        return {s: (r, rowid) for s, r, rowid in self._db.execute(
            f"SELECT f.rowid >> {SEARCH_SESSION_SHIFT} AS s, min(f.rank), f.rowid FROM {self._fts(skip_orphans)} "
            "WHERE search_fts MATCH ? GROUP BY s", (clause.fts(),))}

    def first_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, int]:
        return dict(self._db.execute(
            f"SELECT f.rowid >> {SEARCH_SESSION_SHIFT} AS s, min(f.rowid) FROM {self._fts(skip_orphans)} "
            "WHERE search_fts MATCH ? GROUP BY s", (clause.fts(),)))

    def first_in_session(self, clause: Clause, session_dir: int, *, skip_orphans: bool) -> int | None:
        low = session_dir << SEARCH_SESSION_SHIFT
        row = self._db.execute(
            f"SELECT f.rowid FROM {self._fts(skip_orphans)} WHERE search_fts MATCH ? AND f.rowid BETWEEN ? AND ? "
            "LIMIT 1", (clause.fts(), low, low | SEARCH_SEQ_MASK)).fetchone()
        return row[0] if row else None

    def sessions_bound(self) -> int:
        return max(1, self._db.execute("SELECT max(rowid) FROM sessions").fetchone()[0] or 1)

    def filtered(self, session_dirs: Iterable[int], filters: Filters) -> set[int]:
        where, args = filter_sql(filters)
        sql = "SELECT s.dir_ino FROM sessions s WHERE s.dir_ino IN (SELECT value FROM json_each(?))"
        return {r[0] for r in self._db.execute(" AND ".join([sql, *where]), [json.dumps(list(session_dirs)), *args])}

    def newest_first(self, filters: Filters, sessions_ino: int, among: list[int] | None = None) -> Iterator[int]:
        where, args = filter_sql(filters)
        if among is not None:
            where = ["s.dir_ino IN (SELECT value FROM json_each(?))", *where]
            args = [json.dumps(among), *args]
        sql = "SELECT s.dir_ino FROM sessions s" + (" WHERE " + " AND ".join(where) if where else "") + \
              " ORDER BY s.start_time DESC, s.id"
        cursor = self._db.execute(sql, args)
        seen = set()
        while batch := cursor.fetchmany(64):
            for (ino,) in batch:
                seen.add(ino)
                yield ino
        if not filters.empty:
            return
        if among is not None:
            yield from sorted(set(among) - seen)
            return
        for (ino,) in self._db.execute("SELECT d.ino FROM dentries d WHERE d.parent = ? AND NOT EXISTS "
                                       "(SELECT 1 FROM sessions s WHERE s.dir_ino = d.ino) ORDER BY d.rowid",
                                       (sessions_ino,)).fetchall():
            yield ino

    def session_names(self, session_dirs: Iterable[int], sessions_ino: int) -> dict[int, bytes]:
        return {ino: bytes(name) for ino, name in self._db.execute(
            "SELECT ino, name FROM dentries WHERE +parent = ? AND ino IN (SELECT value FROM json_each(?))",
            (sessions_ino, json.dumps(list(session_dirs))))}

    # -- sessions by their fields ------------------------------------------------------------
    def tags(self) -> list[str]:
        return [t for (t,) in self._db.execute("SELECT DISTINCT tag FROM session_tags ORDER BY tag")]

    def start_days(self) -> list[str]:
        return [d for (d,) in self._db.execute(
            "SELECT DISTINCT substr(start_time, 1, 10) FROM sessions WHERE start_time IS NOT NULL ORDER BY 1")]

    def tagged(self, tag: str, limit: int | None = None) -> list[str]:
        return [s for (s,) in self._db.execute(
            "SELECT s.id FROM session_tags t JOIN sessions s ON s.id = t.session_id WHERE t.tag = ? "
            "ORDER BY s.start_time DESC, s.id LIMIT ?", (tag, _limit(limit)))]

    def started_on(self, day: str, limit: int | None = None) -> list[str]:
        # The range lets the start time index answer; substr keeps times in other notations out.
        return [s for (s,) in self._db.execute(
            "SELECT id FROM sessions WHERE start_time >= ? AND start_time < ? AND substr(start_time, 1, 10) = ? "
            "ORDER BY start_time, id LIMIT ?", (day, _next_day(day), day, _limit(limit)))]

    def is_tagged(self, session_id: str, tag: str) -> bool:
        return self._db.execute("SELECT 1 FROM session_tags WHERE tag = ? AND session_id = ?",
                                (tag, session_id)).fetchone() is not None

    def is_started_on(self, session_id: str, day: str) -> bool:
        return self._db.execute("SELECT 1 FROM sessions WHERE id = ? AND substr(start_time, 1, 10) = ?",
                                (session_id, day)).fetchone() is not None
