"""The ``migrations`` and ``migration_attachments`` tables (see ``schema``) behind
``store.backends.catalog.migration.Migration``."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from psycopg import errors as pg

from store.backends.catalog.migration import AttachmentRecord, Migration, Record
from store.core.errors import ConflictError
from .domain import Domain
from .errors import translated

_COLUMNS = ("id, source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
            "imported_at, verified_at, finalized_at, updated_at")
_ACTIVE_SQL = "('imported', 'verified', 'finalized')"


@translated
class PostgresMigration(Domain, Migration):
    """The migration record through one view."""

    def ensure_tables(self) -> None:
        """Nothing to do: every PostgreSQL catalog is created with them."""

    def records(self) -> list[Record]:
        return [Record(*row) for row in self._x(f"SELECT {_COLUMNS} FROM migrations ORDER BY id")]

    def active_record_of(self, session_id: str) -> Record | None:
        row = self._one(f"SELECT {_COLUMNS} FROM migrations WHERE session_id = %s AND status IN {_ACTIVE_SQL}",
                        (session_id,))
        return Record(*row) if row else None

    def attachments(self, record_id: int) -> list[AttachmentRecord]:
        return [AttachmentRecord(*r) for r in self._x(
            "SELECT name, source, sha256, size FROM migration_attachments WHERE migration_id = %s "
            'ORDER BY name COLLATE "C"', (record_id,))]

    def attachment_users(self) -> dict[str, set[int]]:
        users: dict[str, set[int]] = defaultdict(set)
        for source, record_id in self._x("SELECT source, migration_id FROM migration_attachments"):
            users[source].add(record_id)
        return users

    def attachment_names_from(self, directory: str) -> set[str]:
        return {row[0] for row in self._x(
            "SELECT a.name FROM migration_attachments a JOIN migrations m ON m.id = a.migration_id "
            f"WHERE m.status IN {_ACTIVE_SQL} AND left(a.source, %s) = %s", (len(directory), directory))}

    def record_imported(self, source: str, session_id: str, sha256: str, size: int, mtime_ns: int, digest: str,
                        attachments: Iterable[AttachmentRecord]) -> None:
        now = time.time_ns()
        # A savepoint: a refused insert leaves the caller's transaction usable, as in SQLite.
        self._x("SAVEPOINT record_imported")
        try:
            mid = self._one(
                "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, "
                "reason, imported_at, verified_at, finalized_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, 'imported', NULL, NULL, %s, NULL, NULL, %s) "
                "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest, "
                "status = 'imported', stage = NULL, reason = NULL, imported_at = excluded.imported_at, "
                "verified_at = NULL, finalized_at = NULL, updated_at = excluded.updated_at RETURNING id",
                (source, session_id, sha256, size, mtime_ns, digest, now, now))[0]
        except pg.UniqueViolation:
            self._x("ROLLBACK TO SAVEPOINT record_imported")
            self._x("RELEASE SAVEPOINT record_imported")
            raise ConflictError(f"session {session_id} is already imported from another file") from None
        self._x("RELEASE SAVEPOINT record_imported")
        self._x("DELETE FROM migration_attachments WHERE migration_id = %s", (mid,))
        self._bulk("INSERT INTO migration_attachments (migration_id, name, source, sha256, size) "
                   "SELECT * FROM {rows}", ("bigint", "text", "text", "text", "bigint"),
                   [(mid, a.name, a.source, a.sha256, a.size) for a in attachments])

    def record_failed(self, source: str, session_id: str | None, sha256: str | None, size: int,
                      mtime_ns: int, stage: str | None, reason: str | None) -> None:
        self._x(
            "INSERT INTO migrations (source, session_id, sha256, size, mtime_ns, digest, status, stage, reason, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, NULL, 'failed', %s, %s, %s) "
            "ON CONFLICT (source) DO UPDATE SET session_id = excluded.session_id, sha256 = excluded.sha256, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, digest = NULL, status = 'failed', "
            "stage = excluded.stage, reason = excluded.reason, imported_at = NULL, verified_at = NULL, "
            "updated_at = excluded.updated_at WHERE migrations.status = 'failed'",
            (source, session_id, sha256, size, mtime_ns, stage, reason, time.time_ns()))

    def touch(self, record_id: int, sha256: str, mtime_ns: int) -> None:
        self._x("UPDATE migrations SET mtime_ns = %s, updated_at = %s WHERE id = %s AND sha256 = %s",
                (mtime_ns, time.time_ns(), record_id, sha256))

    def mark_verified(self, sources: Iterable[str]) -> None:
        now = time.time_ns()
        self._x("UPDATE migrations SET status = 'verified', verified_at = %s, updated_at = %s "
                "WHERE source = ANY(%s) AND status = 'imported'", (now, now, list(sources)))

    def mark_verification_failed(self, source: str, reason: str) -> None:
        self._x("UPDATE migrations SET status = 'failed', stage = 'verify', reason = %s, "
                "imported_at = NULL, verified_at = NULL, updated_at = %s WHERE source = %s",
                (reason, time.time_ns(), source))
        self._x("DELETE FROM migration_attachments WHERE migration_id IN "
                "(SELECT id FROM migrations WHERE source = %s)", (source,))

    def mark_finalized(self, record_ids: Iterable[int]) -> None:
        now = time.time_ns()
        self._x("UPDATE migrations SET status = 'finalized', finalized_at = coalesce(finalized_at, %s), "
                "updated_at = %s WHERE id = ANY(%s)", (now, now, list(record_ids)))
