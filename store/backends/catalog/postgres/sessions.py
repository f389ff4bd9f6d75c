"""The ``sessions``, ``session_tags`` and ``session_topics`` tables (see ``schema``) behind
``store.backends.catalog.sessions.Sessions``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from store.backends.catalog.sessions import SessionFilter, Sessions
from store.core.session_fields import METADATA_NAME, parse_metadata, session_fields
from .domain import Domain
from .errors import translated

# Blocks holding the files under one directory (per-session cache eviction).
_BLOCKS_UNDER = """
WITH RECURSIVE tree(ino) AS (
    SELECT %s::bigint UNION SELECT d.ino FROM dentries d JOIN tree ON d.parent = tree.ino
)
SELECT DISTINCT c.block_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
WHERE f.ino IN (SELECT ino FROM tree)
"""


@translated
class PostgresSessions(Domain, Sessions):
    """The session index through one view."""

    def _delete(self, session_id: str) -> None:
        for table, column in (("session_tags", "session_id"), ("session_topics", "session_id"), ("sessions", "id")):
            self._x(f"DELETE FROM {table} WHERE {column} = %s", (session_id,))

    def refresh(self, dir_ino: int, sessions_ino: int, read_file: Callable[[int], bytes]) -> None:
        row = self._one("SELECT id FROM sessions WHERE dir_ino = %s", (dir_ino,))
        if row:
            self._delete(row[0])
        row = self._one("SELECT name FROM dentries WHERE ino = %s AND parent = %s", (dir_ino, sessions_ino))
        if row is None:
            return
        session_id = row[0].decode("utf-8", "surrogateescape")
        meta_row = self._one("SELECT d.ino, i.size, i.mode FROM dentries d JOIN inodes i ON i.id = d.ino "
                             "WHERE d.parent = %s AND d.name = %s", (dir_ino, METADATA_NAME))
        if meta_row is None or meta_row[2] & 0o170000 != 0o100000:
            return
        meta = parse_metadata(read_file(meta_row[0]))
        if meta is None:
            return
        f = session_fields(meta)
        self._delete(session_id)
        self._x("INSERT INTO sessions (id, dir_ino, name, status, start_time, end_time, category, version, "
                "updated_at, meta_size) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (session_id, dir_ino, f.name, f.status, f.start_time, f.end_time, f.category, f.version,
                 f.updated_at, meta_row[1]))
        self._x("INSERT INTO session_tags (session_id, tag) SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (session_id, list(f.tags)))
        self._x("INSERT INTO session_topics (session_id, topic_id) SELECT %s, unnest(%s::text[]) "
                "ON CONFLICT DO NOTHING", (session_id, list(f.topic_ids)))

    def matching(self, where: SessionFilter) -> list[str]:
        conditions, args = [], []
        if where.statuses:
            conditions.append("s.status = ANY(%s)")
            args.append(list(where.statuses))
        for op, bound in ((">=", where.start_after), ("<=", where.start_before)):
            if bound is not None:
                conditions.append(f"s.start_time {op} %s")
                args.append(bound)
        if where.tags:
            conditions.append("EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = s.id AND t.tag = ANY(%s))")
            args.append(list(where.tags))
        if where.topic_ids:
            conditions.append("EXISTS (SELECT 1 FROM session_topics t WHERE t.session_id = s.id "
                              "AND t.topic_id = ANY(%s))")
            args.append(list(where.topic_ids))
        # SQLite's order: NULL start times last when descending (as NULLS LAST), text compared bytewise
        sql = ("SELECT s.id FROM sessions s" + (" WHERE " + " AND ".join(conditions) if conditions else "")
               + ' ORDER BY s.start_time COLLATE "C" DESC NULLS LAST, s.id COLLATE "C" LIMIT %s OFFSET %s')
        args += [where.limit, where.offset]
        return [row[0] for row in self._x(sql, args)]

    def blocks_under(self, dir_ino: int) -> list[int]:
        return [row[0] for row in self._x(_BLOCKS_UNDER, (dir_ino,))]

    def names(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        return dict(self._x("SELECT id, name FROM sessions WHERE id = ANY(%s)", (list(session_ids),)).fetchall())
