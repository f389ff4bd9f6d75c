"""The catalog seen through PostgreSQL connections and the catalog's typed operations.

``PostgresCatalog.reader()`` gives this thread's read view: outside ``snapshot()`` each
call borrows a pooled connection for its duration (one statement or a few, each seeing
the latest commit); inside ``snapshot()`` one connection is pinned in a REPEATABLE READ
READ ONLY transaction. ``PostgresCatalog.write()`` pins one in a SERIALIZABLE transaction.
A view carries one attribute per domain, built on first use; nothing outside this
package sees a connection.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from typing import Iterator

import psycopg

from ..interface import CatalogView
from .audit import PostgresAudit
from .changes import Touched
from .content import PostgresContent
from .errors import on_connection, store_error
from .maintenance import PostgresMaintenance
from .meta import PostgresMeta
from .migration import PostgresMigration
from .mounts import PostgresMounts
from .sessions import PostgresSessions
from .tree import PostgresTree


class PostgresView(CatalogView):
    """The catalog through pooled connections; see the module docstring."""

    def __init__(self, catalog, *, writable: bool):
        """``catalog``: the ``catalog.PostgresCatalog`` whose pool the view borrows from."""
        self._catalog = catalog
        self.writable = writable
        self.conn: psycopg.Connection | None = None
        self._pinned = False
        self.touched = Touched()
        #: Bumped at each BEGIN and ROLLBACK TO SAVEPOINT: a value read in the transaction under
        #: the same ``epoch`` still holds (unless this view wrote it since).
        self.epoch = 0

    @property
    def holding(self) -> bool:
        """True while a connection is bound to this view (a call or a transaction)."""
        return self.conn is not None

    @contextlib.contextmanager
    def using(self) -> Iterator[psycopg.Connection]:
        """The view's connection for the block: the pinned one, or one borrowed for it."""
        if self.conn is not None:
            yield self.conn
            return
        with self._catalog.pool.borrow() as conn:
            self.conn = conn
            try:
                yield conn
            finally:
                self.conn = None

    @contextlib.contextmanager
    def pinned(self, begin: str) -> Iterator[psycopg.Connection]:
        """Bind a pooled connection to this view for the block, inside a transaction opened
        by ``begin`` (the caller ends it). A connection that died while idle in the pool is
        replaced once."""
        for attempt in (1, 2):
            with self._catalog.pool.borrow() as conn:
                try:
                    conn.execute(begin)
                except psycopg.OperationalError:
                    if attempt == 1:
                        continue
                    raise
                self.conn, self._pinned = conn, True
                self.epoch += 1
                try:
                    yield conn
                finally:
                    self.conn, self._pinned = None, False
                return

    def cursor(self) -> psycopg.Cursor:
        """A cursor on the view's connection (inside a transaction, or a call of a domain)."""
        if self.conn is None:
            raise RuntimeError("a catalog view's cursor is used outside a call or a transaction")
        return self.conn.cursor()

    @property
    def in_transaction(self) -> bool:
        return self._pinned

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["PostgresView"]:
        if self._pinned:
            yield self
            return
        try:
            with self.pinned("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as conn:
                try:
                    yield self
                finally:
                    if not conn.broken:
                        conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise store_error(exc, "read a snapshot") from exc

    @contextlib.contextmanager
    def savepoint(self) -> Iterator["PostgresView"]:
        try:
            self.conn.execute("SAVEPOINT part")
        except psycopg.Error as exc:
            raise store_error(exc, "begin a savepoint") from exc
        try:
            yield self
        except BaseException:
            self.epoch += 1
            try:
                self.conn.execute("ROLLBACK TO SAVEPOINT part")
                self.conn.execute("RELEASE SAVEPOINT part")
            except psycopg.Error as exc:
                raise store_error(exc, "roll back a savepoint") from exc
            raise
        try:
            self.conn.execute("RELEASE SAVEPOINT part")
        except psycopg.Error as exc:
            raise store_error(exc, "release a savepoint") from exc

    @functools.cached_property
    def tree(self) -> PostgresTree:
        return PostgresTree(self)

    @functools.cached_property
    def content(self) -> PostgresContent:
        return PostgresContent(self)

    @functools.cached_property
    def meta(self) -> PostgresMeta:
        return PostgresMeta(self)

    @functools.cached_property
    def sessions(self) -> PostgresSessions:
        return PostgresSessions(self)

    @functools.cached_property
    def maintenance(self) -> PostgresMaintenance:
        return PostgresMaintenance(self)

    @functools.cached_property
    def migration(self) -> PostgresMigration:
        return PostgresMigration(self)

    @functools.cached_property
    def mounts(self) -> PostgresMounts:
        return PostgresMounts(self)

    @functools.cached_property
    def audit(self) -> PostgresAudit:
        return PostgresAudit(self)

    @functools.cached_property
    def search(self):
        """The search domain (``search.PostgresSearch``, written beside this package's other
        domains, imported on first use), each call on the view's connection."""
        return _search_class()(self)


@functools.cache
def _search_class() -> type:
    return on_connection(importlib.import_module(f"{__package__}.search").PostgresSearch)
