"""sqlite3 errors become store errors at the edge of this package, naming the operation.

A full disk is ``FsError(ENOSPC)``, an I/O error ``FsError(EIO)``, a damaged or foreign
database file ``FormatError``, a broken constraint ``ConflictError``; anything else a
``CatalogError``. A domain may classify first (the search index says when a fault is its
own). The sqlite3 exception stays attached as the cause.
"""

from __future__ import annotations

import errno
import functools
import inspect
import sqlite3
from typing import Callable

from store.core.errors import CatalogError, ConflictError, FormatError, FsError, StoreError

_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26

Classify = Callable[[sqlite3.Error, str], StoreError]


def store_error(exc: sqlite3.Error, operation: str) -> StoreError:
    """The store error for ``exc``, raised while the catalog was doing ``operation``."""
    text = f"catalog: {operation} failed: {exc}"
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == _SQLITE_FULL:
        return FsError(errno.ENOSPC, text)
    if code == _SQLITE_IOERR:
        return FsError(errno.EIO, text)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return FormatError(text)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(text)
    return CatalogError(text)


def translated(cls: type | None = None, *, classify: Classify = store_error):
    """Class decorator: the public methods of ``cls`` (generators included) raise store errors,
    never sqlite3 ones; ``classify`` picks the error. ``@translated`` or
    ``@translated(classify=...)``."""
    def decorate(klass: type) -> type:
        for name, method in list(vars(klass).items()):
            if not name.startswith("_") and inspect.isfunction(method):
                setattr(klass, name, _translating(method, name.replace("_", " "), classify))
        return klass
    return decorate if cls is None else decorate(cls)


def _translating(method, operation: str, classify: Classify):
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(*args, **kwargs):
            try:
                yield from method(*args, **kwargs)
            except sqlite3.Error as exc:
                raise classify(exc, operation) from exc
        return generate

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise classify(exc, operation) from exc
    return call
