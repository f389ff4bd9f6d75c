"""psycopg errors of the search index's operations become store errors, and say which ones are
the index's own fault (``SearchIndexError``: the index needs a rebuild) rather than the
catalog's (a full disk, a lost connection, a serialization failure: ``CatalogError``, the
transaction fails whole and may be retried). The psycopg error stays attached as the cause.
"""

from __future__ import annotations

import errno
import functools
import inspect

import psycopg
from psycopg import errors as pgerrors

from store.core.errors import CatalogError, ConflictError, SearchIndexError, StoreError

#: SQLSTATE classes and codes that mean the index's tables or data are at fault: a missing or
#: changed table or column, a tsvector or tsquery PostgreSQL refuses, damaged data or index.
_INDEX_STATES = ("42P01", "42703", "42704", "42601", "22P02", "54000", "XX001", "XX002")
_DISK_FULL = "53100"


def message(exc: psycopg.Error) -> str:
    """PostgreSQL's one-line message of ``exc`` (without the statement it quotes)."""
    return exc.diag.message_primary or str(exc)


def index_error(exc: psycopg.Error, operation: str) -> StoreError:
    """SearchIndexError when the index is at fault (see _INDEX_STATES), else the catalog's error."""
    text = f"search index: {operation} failed: {message(exc)}"
    if exc.sqlstate in _INDEX_STATES:
        return SearchIndexError(text)
    if isinstance(exc, pgerrors.IntegrityError):
        return ConflictError(text)
    return CatalogError(text, errno.ENOSPC if exc.sqlstate == _DISK_FULL else errno.EIO)


def translated_search(klass: type) -> type:
    """Class decorator: the public methods of ``klass`` (generators included) raise store errors
    (``index_error``), never psycopg ones."""
    for name, method in list(vars(klass).items()):
        if not name.startswith("_") and inspect.isfunction(method):
            setattr(klass, name, _translating(method, name.replace("_", " ")))
    return klass


def _translating(method, operation: str):
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(*args, **kwargs):
            try:
                yield from method(*args, **kwargs)
            except psycopg.Error as exc:
                raise index_error(exc, operation) from exc
        return generate

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            raise index_error(exc, operation) from exc
    return call
