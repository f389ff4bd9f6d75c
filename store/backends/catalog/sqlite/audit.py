"""``SqliteAudit``: the audit domain (``store.backends.catalog.audit``) on SQLite, its checks
and its repairs each in a module of their own."""

from __future__ import annotations

from store.backends.catalog.audit import Audit
from store.backends.catalog.sqlite.audit_checks import SqliteAuditChecks
from store.backends.catalog.sqlite.audit_repairs import SqliteAuditRepairs


class SqliteAudit(SqliteAuditChecks, SqliteAuditRepairs, Audit):
    """Whole-catalog checks and repairs over one connection."""
