"""sqlite3 errors of the search index's operations as store errors (``store.core.errors``)."""

from __future__ import annotations

import functools
import inspect
import sqlite3

from store.core.errors import CatalogError, SearchIndexError

_INDEX_WORDS = ("fts5", "malformed", "corrupt", "no such table: search")


def translated_error(exc: sqlite3.Error) -> CatalogError:
    """SearchIndexError (same message) when the index is at fault, else CatalogError; a busy,
    interrupted or out-of-memory catalog is not the index's fault."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
            not isinstance(exc, sqlite3.OperationalError) or any(w in text.lower() for w in _INDEX_WORDS)):
        return SearchIndexError(text)
    return CatalogError(f"the catalog failed: {text}")


def translated(fn):
    """Decorate an operation (plain or generator) so that sqlite3 errors leave it translated."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generate(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except sqlite3.Error as exc:
                raise translated_error(exc) from exc
        return generate

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise translated_error(exc) from exc
    return call
