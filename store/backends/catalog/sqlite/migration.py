"""The ``migrations`` and ``migration_attachments`` tables (see ``schema``) behind
``store.backends.catalog.migration.Migration``."""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable

from store.backends.catalog.migration import AttachmentRecord, Migration, Record
from store.core.errors import ConflictError
from store.backends.catalog.sqlite.errors import translated
from .schema import ensure_migration_tables, has_migration_tables

_COLUMNS = ("id, source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
            "imported_at, verified_at, finalized_at, updated_at")
_ACTIVE_SQL = "('imported', 'verified', 'finalized')"


@translated
class SqliteMigration(Migration):
    """The migration record through one connection (a reader's or the writer's)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def ensure_tables(self) -> None:
        ensure_migration_tables(self._db)

    def records(self) -> list[Record]:
        if not has_migration_tables(self._db):
            return []
        return [Record(*row) for row in self._db.execute(f"SELECT {_COLUMNS} FROM migrations ORDER BY id")]

    def active_record_of(self, session_id: str) -> Record | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM migrations WHERE session_id = ? AND status IN "
                               f"{_ACTIVE_SQL}", (session_id,)).fetchone()
        return Record(*row) if row else None

    def attachments(self, record_id: int) -> list[AttachmentRecord]:
        return [AttachmentRecord(*r) for r in self._db.execute(
            "SELECT name, source, sha256, size FROM migration_attachments WHERE migration_id = ? ORDER BY name",
            (record_id,))]

    def attachment_users(self) -> dict[str, set[int]]:
        users: dict[str, set[int]] = defaultdict(set)
        for source, record_id in self._db.execute("SELECT source, migration_id FROM migration_attachments"):
            users[source].add(record_id)
        return users

    def attachment_names_from(self, directory: str) -> set[str]:
        return {row[0] for row in self._db.execute(
            "SELECT a.name FROM migration_attachments a JOIN migrations m ON m.id = a.migration_id "
            f"WHERE m.status IN {_ACTIVE_SQL} AND substr(a.source, 1, ?) = ?", (len(directory), directory))}

    def record_imported(self, source: str, session_id: str, sha256: str, size: int, mtime_ns: int, digest: str,
                        attachments: Iterable[AttachmentRecord]) -> None:
        db = self._db
        now = time.time_ns()
        try:
            db.execute(
                "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, "
                "reason, imported_at, verified_at, finalized_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'imported', NULL, NULL, ?, NULL, NULL, ?) "
                "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest, "
                "status = 'imported', stage = NULL, reason = NULL, imported_at = excluded.imported_at, "
                "verified_at = NULL, finalized_at = NULL, updated_at = excluded.updated_at",
                (source, session_id, sha256, size, mtime_ns, digest, now, now))
        except sqlite3.IntegrityError:
            raise ConflictError(f"session {session_id} is already imported from another file") from None
        mid = db.execute("SELECT id FROM migrations WHERE source = ?", (source,)).fetchone()[0]
        db.execute("DELETE FROM migration_attachments WHERE migration_id = ?", (mid,))
        db.executemany("INSERT INTO migration_attachments (migration_id, name, source, sha256, size) "
                       "VALUES (?, ?, ?, ?, ?)", [(mid, a.name, a.source, a.sha256, a.size) for a in attachments])

    def record_failed(self, source: str, session_id: str | None, sha256: str | None, size: int,
                      mtime_ns: int, stage: str | None, reason: str | None) -> None:
        self._db.execute(
            "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
            "updated_at) VALUES (?, ?, ?, ?, ?, NULL, 'failed', ?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = NULL, status = 'failed', "
            "stage = excluded.stage, reason = excluded.reason, imported_at = NULL, verified_at = NULL, "
            "updated_at = excluded.updated_at WHERE migrations.status = 'failed'",
            (source, session_id, sha256, size, mtime_ns, stage, reason, time.time_ns()))

    def touch(self, record_id: int, sha256: str, mtime_ns: int) -> None:
        self._db.execute("UPDATE migrations SET mtime_ns = ?, updated_at = ? WHERE id = ? AND sha256 = ?",
                         (mtime_ns, time.time_ns(), record_id, sha256))

    def mark_verified(self, sources: Iterable[str]) -> None:
        now = time.time_ns()
        self._db.executemany("UPDATE migrations SET status = 'verified', verified_at = ?, updated_at = ? "
                             "WHERE source = ? AND status = 'imported'", [(now, now, s) for s in sources])

    def mark_verification_failed(self, source: str, reason: str) -> None:
        self._db.execute("UPDATE migrations SET status = 'failed', stage = 'verify', reason = ?, "
                         "imported_at = NULL, verified_at = NULL, updated_at = ? WHERE source = ?",
                         (reason, time.time_ns(), source))
        self._db.execute("DELETE FROM migration_attachments WHERE migration_id IN "
                         "(SELECT id FROM migrations WHERE source = ?)", (source,))

    def mark_finalized(self, record_ids: Iterable[int]) -> None:
        now = time.time_ns()
        self._db.executemany("UPDATE migrations SET status = 'finalized', finalized_at = coalesce(finalized_at, ?), "
                             "updated_at = ? WHERE id = ?", [(now, now, i) for i in record_ids])
