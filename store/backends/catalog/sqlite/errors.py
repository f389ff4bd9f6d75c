"""sqlite3 errors become store errors at the edge of this package, naming the operation.

A full disk is ``FsError(ENOSPC)``, an I/O error ``FsError(EIO)``, a damaged or foreign
database file ``FormatError``, a broken constraint ``ConflictError``; anything else a
``StoreError``. The sqlite3 exception stays attached as the cause.
"""

from __future__ import annotations

import errno
import functools
import sqlite3

from store.core.errors import ConflictError, FormatError, FsError, StoreError

_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26


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
    return StoreError(text)


def translated(cls: type) -> type:
    """Class decorator: the public methods of ``cls`` raise store errors, never sqlite3 ones."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue
        setattr(cls, name, _translating(method, name.replace("_", " ")))
    return cls


def _translating(method, operation: str):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(exc, operation) from exc
    return wrapper
