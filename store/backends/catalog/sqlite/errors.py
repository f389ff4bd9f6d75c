"""sqlite3 errors become store errors at the edge of this package, naming the operation.

A damaged or foreign database file is a ``FormatError``, a broken constraint a
``ConflictError``; anything else a ``CatalogError`` whose ``errno`` is what a filesystem
call reports for it (ENOSPC for a full disk, else EIO). A domain may classify first (the search index says when a fault is its
own). The sqlite3 exception stays attached as the cause.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import sqlite3
from typing import Callable

from store.backends.catalog.methods import marked, public_methods
from store.core.errors import CatalogError, ConflictError, FormatError, StoreError

_SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 11, 13, 14, 26

Classify = Callable[[sqlite3.Error, str], StoreError]


def store_error(exc: sqlite3.Error, operation: str) -> StoreError:
    """The store error for ``exc``, raised while the catalog was doing ``operation``."""
    text = f"catalog: {operation} failed: {exc}"
    code = _code(exc)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return FormatError(text)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(text)
    return CatalogError(text, _errno(code))


def transaction_error(path, exc: sqlite3.Error) -> CatalogError:
    """A write transaction that failed as a whole (rolled back): always a ``CatalogError``
    naming the catalog, ENOSPC when its disk is full."""
    return CatalogError(f"catalog {path}: {exc}", _errno(_code(exc)))


def open_error(path, exc: sqlite3.Error, readonly: bool) -> StoreError:
    """Why the catalog at ``path`` could not be opened, with what to do about it."""
    code = _code(exc)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "no such table" in str(exc):
        return FormatError(f"{path} is not a sessionfs catalog: {exc}")
    hint = ""
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN) or "readonly" in str(exc):
        hint = ("; reading a store needs write access to its directory (SQLite creates catalog.db-shm "
                "and catalog.db-wal there)" if readonly else "; is the store directory writable?")
    return CatalogError(f"cannot open the catalog {path}: {exc}{hint}", _errno(code))


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _errno(code: int) -> int:
    """What a filesystem call reports for a catalog failure with SQLite result ``code``."""
    return errno.ENOSPC if code == _SQLITE_FULL else errno.EIO


@contextlib.contextmanager
def sqlite_errors(operation: str, classify: Classify = store_error):
    """A block whose sqlite3 errors leave it as store errors (``classify``), naming ``operation``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise classify(exc, operation) from exc


def translated(cls: type | None = None, *, classify: Classify = store_error):
    """Class decorator: the public methods of ``cls``, inherited ones included (generators too),
    raise store errors, never sqlite3 ones; ``classify`` picks the error. ``@translated`` or
    ``@translated(classify=...)``."""
    def decorate(klass: type) -> type:
        for name, method in public_methods(klass):
            setattr(klass, name, _translating(method, name.replace("_", " "), classify))
        return klass
    return decorate if cls is None else decorate(cls)


def _translating(method, operation: str, classify: Classify):
    return marked(_wrap(method, operation, classify))


def _wrap(method, operation: str, classify: Classify):
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(*args, **kwargs):
            try:
                yield from method(*args, **kwargs)
            except sqlite3.Error as exc:
                raise classify(exc, operation) from exc
        return generate

    @functools.wraps(method)
    def call(*args, **kwargs):      # try/except, not sqlite_errors: this runs on every catalog call
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise classify(exc, operation) from exc
    return call
