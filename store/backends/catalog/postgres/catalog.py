"""``PostgresCatalog``: the catalog in a PostgreSQL database that many mounts share.

Connections come from a bounded pool (``pool``): a read outside ``snapshot()`` borrows one
per call, a snapshot or a write transaction pins one. Writes of one process run one at a
time (as with SQLite); writes of different processes run concurrently, SERIALIZABLE, so
the catalog's invariants hold as if they had run one after the other. A write that loses
a race is rolled back whole and raises ``RetryableError``: ``write()`` cannot run its
``with`` block again, so the retry lives one level up, in ``transact(fn)``, which runs
``fn(view)`` again with bounded, jittered backoff; callers whose block has no effect outside
the transaction (namespace operations, the persistence worker's commits: staged data stays
until its commit succeeds) use it.

Every committed write sends ``NOTIFY sessionfs_changes`` with its ``Changes`` (``changes``),
and ``listen(fn)`` hears other catalogs' commits. Every commit waits for the server's WAL
flush, ``durable`` or not: ``synchronous_commit = off`` would let a server crash take
commits that returned, whose staged data the engine has deleted already and which other
mounts have already read (the SQLite catalog's ``synchronous=NORMAL`` loses nothing when
a process crashes; only a power loss takes its last commits).
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import threading
import time
from typing import Callable, Iterator, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from ..interface import Catalog
from ..rows import Changes
from . import counters
from .changes import CHANNEL, encode
from .errors import RetryableError, store_error, transaction_error
from .exclusive import AdvisoryLocks
from .listener import Listener
from .pool import Pool
from .schema import FORMAT_VERSION, create_mount_tables, create_tables, read_identity
from .view import PostgresView
from store.core.errors import CatalogError, ConflictError, FormatError

T = TypeVar("T")

DEFAULT_POOL_SIZE = 8
#: ``transact``: attempts of a transaction that keeps losing races, and the first backoff.
RETRY_ATTEMPTS = 8
RETRY_FIRST_DELAY = 0.005
RETRY_MAX_DELAY = 0.5


def shown_url(url: str) -> str:
    """``url`` without a password (``user:password@`` or ``password=`` in its query), for messages."""
    return re.sub(r"([?&]password=)[^&]*", r"\1***", re.sub(r"(//[^:/@]+):[^@/]*@", r"\1@", url))


class PostgresCatalog(Catalog):
    """``Catalog`` (store.backends.catalog.interface) on PostgreSQL; see the module docstring."""

    def __init__(self, url: str, *, readonly: bool = False, pool_size: int = DEFAULT_POOL_SIZE):
        self.url = url
        self.where = shown_url(url)
        self.readonly = readonly
        self.pool = Pool(url, pool_size, name=f"catalog {self.where}")
        self.origin = secrets.token_hex(6)       # names this object's commits in NOTIFY payloads
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._writer_view = PostgresView(self, writable=True)
        self._hooks: list[Callable[[Changes], None]] = []
        self._listeners: list[Listener] = []
        self._locks = AdvisoryLocks(url, self.where)
        self.commits = 0
        self._folded_at = 0
        self.upgraded_from: int | None = None
        try:
            with self.pool.borrow() as conn:
                identity = read_identity(conn)
        except psycopg.Error as exc:
            self.pool.close()
            raise CatalogError(f"cannot open the catalog {self.where}: {exc}") from exc
        except BaseException:
            self.pool.close()
            raise
        if identity is None:
            self.pool.close()
            raise FormatError(f"{self.where} holds no sessionfs catalog; create one with 'sessionfs init'")
        if identity["format"] != FORMAT_VERSION:
            self.pool.close()
            raise FormatError(f"{self.where} holds a catalog of format {identity['format']}; this sessionfs "
                              f"reads format {FORMAT_VERSION}")
        self.format_version = FORMAT_VERSION
        self.store_id = identity["store_id"]
        if not readonly:
            self._add_mount_tables()

    def _add_mount_tables(self) -> None:
        """The mounts register (``schema.create_mount_tables``) in a catalog made before it."""
        try:
            with self.pool.borrow() as conn:
                if conn.execute("SELECT to_regclass('unlinked_noted')").fetchone()[0] is None:
                    with conn.transaction():
                        with conn.cursor() as cur:
                            create_mount_tables(cur)
        except psycopg.Error as exc:
            self.pool.close()
            raise CatalogError(f"cannot open the catalog {self.where}: {exc}") from exc

    # -- creating and joining ----------------------------------------------------------
    @staticmethod
    def initialize(url: str, store_id: str, objects: str) -> None:
        """Create the catalog of a new store (``store_id``, its objects at ``objects``) in the
        empty database at ``url``; ``ConflictError`` when it holds a store already."""
        where = shown_url(url)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x5E55_1011,))
                    if read_identity(conn) is not None:
                        raise ConflictError(f"{where} already holds a sessionfs catalog")
                    if conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]:
                        raise ConflictError(f"{where} is not empty; give sessionfs a database of its own")
                    with conn.cursor() as cur:
                        create_tables(cur)
                        cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)",
                                        [(k, Jsonb(v)) for k, v in (("format_version", FORMAT_VERSION),
                                                                    ("created", time.time_ns()),
                                                                    ("store_id", store_id), ("objects", objects))])
        except psycopg.Error as exc:
            raise store_error(exc, f"create the catalog in {where}") from exc

    @staticmethod
    def identity(url: str) -> dict | None:
        """{store_id, objects, format} of the store whose catalog is at ``url``, or None when
        the database holds none (a second machine joins a store by checking it)."""
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                return read_identity(conn)
        except psycopg.Error as exc:
            raise store_error(exc, f"read the catalog at {shown_url(url)}") from exc

    # -- views -------------------------------------------------------------------------
    def reader(self) -> PostgresView:
        """This thread's read view (it holds no connection between calls)."""
        view = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = PostgresView(self, writable=False)
        return view

    def in_snapshot(self) -> bool:
        view = getattr(self._local, "view", None)
        return view is not None and view.in_transaction

    def add_commit_hook(self, fn: Callable[[Changes], None]) -> None:
        self._hooks.append(fn)

    @contextlib.contextmanager
    def write(self, durable: bool = False) -> Iterator[PostgresView]:
        """A write transaction's view: SERIALIZABLE, committed (with its NOTIFY) when the block
        ends and durable when ``write`` returns (whatever ``durable`` says: see the module
        docstring), rolled back when it raises. A lost race raises ``RetryableError`` (see
        ``transact``); a failed connection ``CatalogError``, the transaction rolled back or,
        when the connection died during COMMIT, either committed whole or not at all."""
        if self.readonly:
            raise FormatError(f"{self.where} is open read-only")
        view = self._writer_view
        with self._write_lock:
            if view.in_transaction:
                raise CatalogError(f"catalog {self.where}: a write transaction is open already in this thread")
            try:
                with view.pinned("BEGIN ISOLATION LEVEL SERIALIZABLE") as conn:
                    try:
                        yield view
                        changes = view.touched.peek()
                        if changes:
                            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(self.origin, changes)))
                        conn.execute("COMMIT")
                    except BaseException:
                        if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                            conn.execute("ROLLBACK")
                        raise
                self.commits += 1
            except psycopg.Error as exc:
                raise transaction_error(self.where, exc) from exc
            finally:
                changes = view.touched.take()
                if changes:
                    for fn in self._hooks:
                        fn(changes)

    def transact(self, fn: Callable[[PostgresView], T], durable: bool = False,
                 attempts: int = RETRY_ATTEMPTS) -> T:
        """``fn(view)`` inside ``write(durable)``, run again after a lost race (serialization
        failure, deadlock) up to ``attempts`` times with jittered exponential backoff; ``fn``
        must have no effect outside the transaction."""
        delay = RETRY_FIRST_DELAY
        for attempt in range(1, attempts + 1):
            try:
                with self.write(durable) as view:
                    return fn(view)
            except RetryableError:
                if attempt == attempts:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RETRY_MAX_DELAY)
        raise AssertionError("unreachable")

    # -- other writers -----------------------------------------------------------------
    def listen(self, fn: Callable[[Changes | None], None]) -> Listener:
        """Call ``fn(changes)`` from a thread of its own for each commit of another catalog
        object on this database, and ``fn(None)`` after the connection was lost and came back
        (commits may have gone unheard: forget everything). The listener holds one of the
        pool's connections until ``close`` (so the pool needs two at least)."""
        if self.pool.size < 2:
            raise ValueError(f"listening needs a pool of two connections at least (it has {self.pool.size})")
        listener = Listener(self.pool, self.origin, fn)
        self._listeners.append(listener)
        listener.start()
        return listener

    # -- one process at a time --------------------------------------------------------
    def try_exclusive(self, name: str) -> bool:
        """``Catalog.try_exclusive`` across every mount of the store: an advisory lock on a
        connection of its own (``exclusive``), released by the server if this process dies."""
        return self._locks.try_take(name)

    def release_exclusive(self, name: str) -> None:
        self._locks.release(name)

    # -- upkeep ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Commits are durable on the server already; this folds the counters' delta rows when
        they pile up, and vacuums the folded ones away (their dead rows would stay until
        autovacuum came by, which a table this small rarely draws)."""
        if self.readonly or self.commits == self._folded_at:
            return
        done = self.commits
        with contextlib.suppress(RetryableError):
            with self.pool.borrow() as conn:
                try:
                    with conn.transaction():
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        folded = counters.fold(conn)
                    if folded:
                        conn.execute("VACUUM counter_deltas")
                except psycopg.Error as exc:
                    raise store_error(exc, "fold the counters") from exc
        self._folded_at = done

    def open_connections(self) -> int:
        """Connections this catalog holds open now (never more than its pool size)."""
        return self.pool.open_connections

    def close(self) -> None:
        self._locks.close()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        with self._write_lock:
            self.pool.close()
