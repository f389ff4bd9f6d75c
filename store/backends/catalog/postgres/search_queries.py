"""The query operations of the PostgreSQL search index: ``tsv @@ tsquery`` over the documents'
parts (GIN), ranked by ts_rank (title weighted 4:1, the best part of a document counts), per
session through the id ranges, and the sessions' structured fields as filters.

Text is compared and ordered bytewise (``COLLATE "C"``), as SQLite does, whatever the
database's collation: the same sessions pass a time bound and ties sort the same way."""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from store.backends.catalog.postgres.search_errors import translated_search
from store.backends.catalog.postgres.search_schema import SEARCH_SEQ_MASK, SEARCH_SESSION_SHIFT
from store.backends.catalog.postgres.search_vectors import query_text
from store.backends.catalog.search import Filters
from store.core.query import Clause

#: ts_rank's weights of the parts' labels {D, C, B, A}: the title (A) counts four times the body (D).
RANK_WEIGHTS = "{0.25, 0.25, 0.25, 1.0}"
_CTID = re.compile(r"\((\d+),")


def filter_sql(filters: Filters) -> tuple[list[str], list]:
    """(conditions on ``sessions s``, their arguments) that ``filters`` makes: every tag and
    topic present, the status one of those given, the start time within the bounds."""
    where, args = [], []
    if filters.statuses:
        where.append('s.status COLLATE "C" = ANY(%s)')
        args.append(list(filters.statuses))
    if filters.after is not None:
        where.append('s.start_time COLLATE "C" >= %s')
        args.append(filters.after)
    if filters.before is not None:
        where.append('s.start_time COLLATE "C" ' + ("< %s" if filters.before[1] else "<= %s"))
        args.append(filters.before[0])
    if filters.tags:
        where.append("NOT EXISTS (SELECT unnest(%s::text[]) EXCEPT SELECT tag FROM session_tags t "
                     "WHERE t.session_id = s.id)")
        args.append(list(filters.tags))
    if filters.topics:
        where.append("NOT EXISTS (SELECT unnest(%s::text[]) EXCEPT SELECT topic_id FROM session_topics t "
                     "WHERE t.session_id = s.id)")
        args.append(list(filters.topics))
    return where, args


@translated_search
class PostgresSearchQueries:
    """The query half of ``PostgresSearch`` (see ``SearchIndex`` for each operation). A clause
    none of whose terms has a word (FTS5 matches nothing for it) matches nothing here either,
    without a query. Documents never have orphan rows here: ``skip_orphans`` changes nothing."""

    def __init__(self, view):
        self._view = view

    def _rows(self, sql: str, args=()) -> list[tuple]:
        cur = self._view.cursor()
        cur.execute(sql, args)
        return cur.fetchall()

    def count_upto(self, clause: Clause, cap: int, *, skip_orphans: bool) -> tuple[int, float]:
        """Parts come in the table's physical order (GIN answers with a bitmap): up to 4 parts a
        document are read, counted by document; beyond what was counted, the total is
        extrapolated from how far into the table the matches reach (free, close enough to plan)."""
        query = query_text(clause)
        if query is None:
            return 0, 0.0
        wanted = 4 * (cap + 1)
        rows = self._rows("SELECT doc, ctid::text FROM search_parts WHERE tsv @@ %s::tsquery LIMIT %s",
                          (query, wanted))
        docs = {doc for doc, _ in rows}
        if len(rows) < wanted or len(docs) > cap:
            n = min(len(docs), cap + 1)
        else:       # documents of many parts: count them exactly
            n = self._rows("SELECT count(*) FROM (SELECT DISTINCT doc FROM search_parts WHERE tsv @@ %s::tsquery "
                           "LIMIT %s) m", (query, cap + 1))[0][0]
        if n <= cap:
            return n, float(n)
        last = int(_CTID.match(rows[-1][1]).group(1)) + 1
        blocks = self._rows("SELECT greatest(1, pg_relation_size('search_parts') / "
                            "current_setting('block_size')::bigint)")[0][0]
        return n, max(n * blocks / min(last, blocks), n + 0.5)     # never equal to n: not exact

    def best_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, tuple[float, int]]:
        query = query_text(clause)
        if query is None:
            return {}
        return {s: (-rank, doc) for s, rank, doc in self._rows(
            f"SELECT DISTINCT ON (s) s, rank, doc FROM (SELECT doc, doc >> {SEARCH_SESSION_SHIFT} AS s, "
            f"max(ts_rank(%s, tsv, q)) AS rank FROM search_parts, CAST(%s AS tsquery) q WHERE tsv @@ q "
            "GROUP BY doc) m ORDER BY s, rank DESC, doc", (RANK_WEIGHTS, query))}

    def first_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, int]:
        query = query_text(clause)
        if query is None:
            return {}
        return dict(self._rows(f"SELECT doc >> {SEARCH_SESSION_SHIFT}, min(doc) FROM search_parts "
                               "WHERE tsv @@ %s::tsquery GROUP BY 1", (query,)))

    def first_in_session(self, clause: Clause, session_dir: int, *, skip_orphans: bool) -> int | None:
        query = query_text(clause)
        if query is None:
            return None
        low = session_dir << SEARCH_SESSION_SHIFT
        rows = self._rows("SELECT doc FROM search_parts WHERE tsv @@ %s::tsquery AND doc BETWEEN %s AND %s LIMIT 1",
                          (query, low, low | SEARCH_SEQ_MASK))
        return rows[0][0] if rows else None

    def sessions_bound(self) -> int:
        """The largest session directory inode: each session has its own, so never fewer."""
        return max(1, self._rows("SELECT max(dir_ino) FROM sessions")[0][0] or 1)

    def filtered(self, session_dirs: Iterable[int], filters: Filters) -> set[int]:
        where, args = filter_sql(filters)
        sql = " AND ".join(["SELECT s.dir_ino FROM sessions s WHERE s.dir_ino = ANY(%s)", *where])
        return {r[0] for r in self._rows(sql, [list(session_dirs), *args])}

    def newest_first(self, filters: Filters, sessions_ino: int, among: list[int] | None = None) -> Iterator[int]:
        where, args = filter_sql(filters)
        if among is not None:
            where, args = ["s.dir_ino = ANY(%s)", *where], [list(among), *args]
        sql = "SELECT s.dir_ino FROM sessions s" + (" WHERE " + " AND ".join(where) if where else "") + \
              ' ORDER BY s.start_time COLLATE "C" DESC NULLS LAST, s.id COLLATE "C"'
        cur = self._view.cursor()
        cur.execute(sql, args)
        seen = set()
        while batch := cur.fetchmany(64):
            for (ino,) in batch:
                seen.add(ino)
                yield ino
        if not filters.empty:
            return
        if among is not None:
            yield from sorted(set(among) - seen)
            return
        for (ino,) in self._rows("SELECT d.ino FROM dentries d WHERE d.parent = %s AND NOT EXISTS "
                                 "(SELECT 1 FROM sessions s WHERE s.dir_ino = d.ino) ORDER BY d.ino",
                                 (sessions_ino,)):
            yield ino

    def session_names(self, session_dirs: Iterable[int], sessions_ino: int) -> dict[int, bytes]:
        return {ino: bytes(name) for ino, name in self._rows(
            "SELECT ino, name FROM dentries WHERE parent = %s AND ino = ANY(%s)", (sessions_ino, list(session_dirs)))}

    # -- sessions by their fields ------------------------------------------------------------
    def tags(self) -> list[str]:
        return [t for (t,) in self._rows('SELECT DISTINCT tag COLLATE "C" FROM session_tags ORDER BY 1')]

    def start_days(self) -> list[str]:
        return [d for (d,) in self._rows('SELECT DISTINCT left(start_time, 10) COLLATE "C" FROM sessions '
                                         "WHERE start_time IS NOT NULL ORDER BY 1")]

    def tagged(self, tag: str, limit: int | None = None) -> list[str]:
        return [s for (s,) in self._rows(
            "SELECT s.id FROM session_tags t JOIN sessions s ON s.id = t.session_id WHERE t.tag = %s "
            'ORDER BY s.start_time COLLATE "C" DESC NULLS LAST, s.id COLLATE "C" LIMIT %s', (tag, limit))]

    def started_on(self, day: str, limit: int | None = None) -> list[str]:
        return [s for (s,) in self._rows(
            'SELECT id FROM sessions WHERE left(start_time, 10) = %s ORDER BY start_time COLLATE "C", id COLLATE "C" '
            "LIMIT %s", (day, limit))]

    def is_tagged(self, session_id: str, tag: str) -> bool:
        return bool(self._rows("SELECT 1 FROM session_tags WHERE tag = %s AND session_id = %s", (tag, session_id)))

    def is_started_on(self, session_id: str, day: str) -> bool:
        return bool(self._rows("SELECT 1 FROM sessions WHERE id = %s AND left(start_time, 10) = %s",
                               (session_id, day)))
