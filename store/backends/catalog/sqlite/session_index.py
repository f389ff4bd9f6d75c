"""The ``sessions`` tables: indexed fields of each session's metadata.json.

``session_fields`` is pure (a metadata dict in, rows out). ``refresh`` runs
inside the write transaction that commits, renames or deletes anything in a
session directory, so the table never disagrees with the committed files.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

import orjson

METADATA_NAME = b"metadata.json"


@dataclass(frozen=True)
class SessionFields:
    name: str | None
    status: str | None
    start_time: str | None
    end_time: str | None
    category: str | None
    version: int | None
    updated_at: str | None
    tags: tuple[str, ...]
    topic_ids: tuple[str, ...]


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(v for v in value if isinstance(v, str)))


def session_fields(meta: dict) -> SessionFields:
    """The indexed fields of a metadata dict; fields of the wrong type index as absent."""
    version = meta.get("version")
    return SessionFields(
        name=_str(meta.get("name")), status=_str(meta.get("status")),
        start_time=_str(meta.get("startTime")), end_time=_str(meta.get("endTime")),
        category=_str(meta.get("category")),
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        updated_at=_str(meta.get("updatedAt")),
        tags=_strings(meta.get("tags")), topic_ids=_strings(meta.get("topicIds")))


def parse_metadata(data: bytes) -> dict | None:
    try:
        meta = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


def forget(db: sqlite3.Connection, dir_ino: int) -> None:
    row = db.execute("SELECT id FROM sessions WHERE dir_ino = ?", (dir_ino,)).fetchone()
    if row:
        db.execute("DELETE FROM session_tags WHERE session_id = ?", (row[0],))
        db.execute("DELETE FROM session_topics WHERE session_id = ?", (row[0],))
        db.execute("DELETE FROM sessions WHERE id = ?", (row[0],))


def refresh(db: sqlite3.Connection, dir_ino: int, sessions_ino: int,
            read_file: Callable[[int], bytes]) -> None:
    """Re-derive the row of the session directory ``dir_ino`` from its metadata.json."""
    forget(db, dir_ino)
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
    db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    db.execute("INSERT INTO sessions (id, dir_ino, name, status, start_time, end_time, category, version, "
               "updated_at, meta_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (session_id, dir_ino, f.name, f.status, f.start_time, f.end_time, f.category, f.version,
                f.updated_at, meta_row[1]))
    db.executemany("INSERT OR IGNORE INTO session_tags (session_id, tag) VALUES (?, ?)",
                   [(session_id, t) for t in f.tags])
    db.executemany("INSERT OR IGNORE INTO session_topics (session_id, topic_id) VALUES (?, ?)",
                   [(session_id, t) for t in f.topic_ids])
