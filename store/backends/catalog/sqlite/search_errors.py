"""Which sqlite3 errors of the search index's operations are the index's own fault."""

from __future__ import annotations

import sqlite3

from store.backends.catalog.sqlite.errors import store_error, translated
from store.core.errors import SearchIndexError, StoreError

_INDEX_WORDS = ("fts5", "malformed", "corrupt", "no such table: search")

__all__ = ["index_error", "translated_search"]


def index_error(exc: sqlite3.Error, operation: str) -> StoreError:
    """SearchIndexError (sqlite's message) when the index is at fault, else the catalog's error:
    a busy, interrupted, full or out-of-memory catalog is not the index's fault."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
            not isinstance(exc, sqlite3.OperationalError) or any(w in text.lower() for w in _INDEX_WORDS)):
        return SearchIndexError(text)
    return store_error(exc, operation)


translated_search = translated(classify=index_error)
