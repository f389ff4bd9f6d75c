"""psycopg errors become store errors at the edge of this package, naming the operation.

As in the SQLite catalog: damaged data is a ``FormatError``, a broken constraint a
``ConflictError``, anything else a ``CatalogError`` whose ``errno`` is what a filesystem
call reports for it (ENOSPC for a full disk, else EIO). A serialization failure or a
deadlock is a ``RetryableError`` (a ``CatalogError``): the transaction was rolled back whole
and running it again may succeed (``PostgresCatalog.transact`` does). The psycopg exception
stays attached as the cause; the URL's password never appears in a message.
"""

from __future__ import annotations

import errno
import functools
import inspect
from typing import Callable

import psycopg
from psycopg import errors as pg

from store.backends.catalog.methods import marked, public_methods
from store.core.errors import CatalogError, ConflictError, FormatError, RetryableError, StoreError

Classify = Callable[[psycopg.Error, str], StoreError]


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (pg.SerializationFailure, pg.DeadlockDetected))


def store_error(exc: psycopg.Error, operation: str) -> StoreError:
    """The store error for ``exc``, raised while the catalog was doing ``operation``."""
    text = f"catalog: {operation} failed: {_first_line(exc)}"
    if is_retryable(exc):
        return RetryableError(text)
    if isinstance(exc, (pg.DataCorrupted, pg.IndexCorrupted)):
        return FormatError(text)
    if isinstance(exc, psycopg.IntegrityError):
        return ConflictError(text)
    return CatalogError(text, _errno(exc))


def _errno(exc: psycopg.Error) -> int:
    """What a filesystem call reports for a catalog failure ``exc``: ENOSPC for a full disk."""
    return errno.ENOSPC if isinstance(exc, pg.DiskFull) else errno.EIO


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def transaction_error(where: str, exc: psycopg.Error) -> CatalogError:
    """A write transaction that failed as a whole (rolled back)."""
    if is_retryable(exc):
        return RetryableError(f"catalog {where}: {_first_line(exc)}")
    return CatalogError(f"catalog {where}: {_first_line(exc)}", _errno(exc))


def translated(cls: type) -> type:
    """Class decorator: each public method of ``cls``, inherited ones included (generators too),
    runs on its view's connection (``PostgresView.using``: borrowed for the call outside a
    transaction) and raises store errors, never psycopg ones."""
    for name, method in public_methods(cls):
        setattr(cls, name, _translating(method, name.replace("_", " ")))
    return cls


def on_connection(cls: type) -> type:
    """A subclass of ``cls`` (a domain translating its own errors, as the search index does)
    whose public methods, inherited ones included, run on its view's connection as
    ``translated`` makes them."""
    wrapped = {name: _translating(method, name.replace("_", " ")) for name, method in public_methods(cls)}
    return type(cls.__name__, (cls,), {**wrapped, "__doc__": cls.__doc__, "__module__": cls.__module__})


def _translating(method, operation: str):
    return marked(_wrap(method, operation))


def _wrap(method, operation: str):
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(self, *args, **kwargs):
            with self._view.using():
                try:
                    yield from method(self, *args, **kwargs)
                except psycopg.Error as exc:
                    raise store_error(exc, operation) from exc
        return generate

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        # A call that borrows its own connection runs again once on a fresh one when the
        # connection failed (an idle pooled connection dies with a server restart): outside a
        # transaction, a call only reads.
        again = not self._view.holding
        while True:
            try:
                with self._view.using():
                    return method(self, *args, **kwargs)
            except psycopg.OperationalError as exc:
                if not again:
                    raise store_error(exc, operation) from exc
                again = False
            except psycopg.Error as exc:
                raise store_error(exc, operation) from exc
    return call
