"""One SQLite connection seen through the catalog's typed operations.

``Catalog.reader()`` gives this thread's read view; ``Catalog.write()`` yields a
transaction view (``writable``) over the one writer connection. A view carries
one attribute per domain of the catalog interface (``tree``, ``content``,
``sessions``, ``search``, ``maintenance``, ``audit``, ``migration``, ``mounts``): each is
the SQLite implementation of that domain, a class of its own module in this
package, built on first use and bound to this view's connection. Nothing
outside this package sees the connection.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from typing import Iterator

from ..interface import CatalogView
from .errors import sqlite_errors
from .content import SqliteContent
from .meta import SqliteMeta
from .tree import SqliteTree
from .maintenance import SqliteMaintenance
from .migration import SqliteMigration
from .mounts import SqliteMounts
from .sessions import SqliteSessions
from .search import SqliteSearch
from .audit import SqliteAudit


class SqliteView(CatalogView):
    """The catalog through one connection; see the module docstring."""

    def __init__(self, db: sqlite3.Connection, *, writable: bool):
        self._db = db
        self.writable = writable

    @functools.cached_property
    def sessions(self) -> SqliteSessions:
        return SqliteSessions(self._db)

    @functools.cached_property
    def migration(self) -> SqliteMigration:
        return SqliteMigration(self._db)

    @functools.cached_property
    def search(self) -> SqliteSearch:
        return SqliteSearch(self._db, writable=self.writable)

    @functools.cached_property
    def maintenance(self) -> SqliteMaintenance:
        return SqliteMaintenance(self._db)

    @functools.cached_property
    def tree(self) -> SqliteTree:
        return SqliteTree(self._db)

    @functools.cached_property
    def content(self) -> SqliteContent:
        return SqliteContent(self._db)

    @functools.cached_property
    def meta(self) -> SqliteMeta:
        return SqliteMeta(self._db)

    @property
    def in_transaction(self) -> bool:
        """True inside ``snapshot()`` or a write transaction (reads see one point in time)."""
        return self._db.in_transaction

    @functools.cached_property
    def mounts(self) -> SqliteMounts:
        return SqliteMounts(self._db)

    @functools.cached_property
    def audit(self) -> SqliteAudit:
        return SqliteAudit(self._db)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["SqliteView"]:
        """Reads inside see one committed state of the catalog (a read transaction)."""
        if self._db.in_transaction:
            yield self
            return
        with sqlite_errors("begin a snapshot"):
            self._db.execute("BEGIN")
        try:
            yield self
        finally:
            with sqlite_errors("end a snapshot"):
                self._db.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator["SqliteView"]:
        """Inside a write transaction: changes made in the block are undone, alone, when it
        raises (the exception goes on); the rest of the transaction stays."""
        with sqlite_errors("begin a savepoint"):
            self._db.execute("SAVEPOINT part")
        try:
            yield self
        except BaseException:
            with sqlite_errors("roll back a savepoint"):
                self._db.execute("ROLLBACK TO part")
                self._db.execute("RELEASE part")
            raise
        with sqlite_errors("release a savepoint"):
            self._db.execute("RELEASE part")


def sql(view: SqliteView | sqlite3.Connection) -> sqlite3.Connection:
    """The connection under ``view`` (a connection is returned as it is), for tests and
    benchmarks that inspect or damage a SQLite catalog on purpose; store code uses the typed
    operations."""
    return view if isinstance(view, sqlite3.Connection) else view._db
