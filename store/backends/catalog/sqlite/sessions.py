"""The ``sessions``, ``session_tags`` and ``session_topics`` tables (see ``schema``) behind
``store.backends.catalog.sessions.Sessions``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

import orjson

from store.backends.catalog.sessions import SessionFilter, Sessions
from store.core.session_fields import METADATA_NAME, parse_metadata, session_fields
from store.backends.catalog.sqlite.errors import translated

# Blocks holding the files under one directory (per-session cache eviction).
_BLOCKS_UNDER = """
WITH RECURSIVE tree(ino) AS (
    SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree ON d.parent = tree.ino
)
SELECT DISTINCT c.block_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
WHERE f.ino IN (SELECT ino FROM tree)
"""


@translated
class SqliteSessions(Sessions):
    """The session index through one connection (a reader's or the writer's)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def _forget(self, dir_ino: int) -> None:
        row = self._db.execute("SELECT id FROM sessions WHERE dir_ino = ?", (dir_ino,)).fetchone()
        if row:
            self._delete(row[0])

    def _delete(self, session_id: str) -> None:
        self._db.execute("DELETE FROM session_tags WHERE session_id = ?", (session_id,))
        self._db.execute("DELETE FROM session_topics WHERE session_id = ?", (session_id,))
        self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def refresh(self, dir_ino: int, sessions_ino: int, read_file: Callable[[int], bytes]) -> None:
        db = self._db
        self._forget(dir_ino)
        row = db.execute("SELECT name FROM dentries WHERE ino = ? AND parent = ?", (dir_ino, sessions_ino)).fetchone()
        if row is None:
            return
        session_id = bytes(row[0]).decode("utf-8", "surrogateescape")
        meta_row = db.execute("SELECT d.ino, i.size, i.mode FROM dentries d JOIN inodes i ON i.id = d.ino "
                              "WHERE d.parent = ? AND d.name = ?", (dir_ino, METADATA_NAME)).fetchone()
        if meta_row is None or meta_row[2] & 0o170000 != 0o100000:
            return
        meta = parse_metadata(read_file(meta_row[0]))
        if meta is None:
            return
        f = session_fields(meta)
        self._delete(session_id)
        db.execute("INSERT INTO sessions (id, dir_ino, name, status, start_time, end_time, category, version, "
                   "updated_at, meta_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (session_id, dir_ino, f.name, f.status, f.start_time, f.end_time, f.category, f.version,
                    f.updated_at, meta_row[1]))
        db.executemany("INSERT OR IGNORE INTO session_tags (session_id, tag) VALUES (?, ?)",
                       [(session_id, t) for t in f.tags])
        db.executemany("INSERT OR IGNORE INTO session_topics (session_id, topic_id) VALUES (?, ?)",
                       [(session_id, t) for t in f.topic_ids])

    def matching(self, where: SessionFilter) -> list[str]:
        conditions, args = [], []

        def any_of(sql: str, values) -> None:
            if values:
                conditions.append(sql.format(", ".join("?" * len(values))))
                args.extend(values)

        any_of("s.status IN ({})", list(where.statuses))
        for op, bound in ((">=", where.start_after), ("<=", where.start_before)):
            if bound is not None:
                conditions.append(f"s.start_time {op} ?")
                args.append(bound)
        any_of("EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = s.id AND t.tag IN ({}))",
               list(where.tags))
        any_of("EXISTS (SELECT 1 FROM session_topics t WHERE t.session_id = s.id AND t.topic_id IN ({}))",
               list(where.topic_ids))
        sql = ("SELECT s.id FROM sessions s" + (" WHERE " + " AND ".join(conditions) if conditions else "")
               + " ORDER BY s.start_time DESC, s.id LIMIT ? OFFSET ?")
        args += [-1 if where.limit is None else where.limit, where.offset]
        return [row[0] for row in self._db.execute(sql, args)]

    def blocks_under(self, dir_ino: int) -> list[int]:
        return [row[0] for row in self._db.execute(_BLOCKS_UNDER, (dir_ino,))]

    def names(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        return dict(self._db.execute("SELECT id, name FROM sessions WHERE id IN (SELECT value FROM json_each(?))",
                                     (orjson.dumps(list(session_ids)).decode(),)))
