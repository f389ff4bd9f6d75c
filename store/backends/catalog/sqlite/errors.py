"""sqlite3 errors leave this package as ``CatalogError``, naming the catalog and the operation."""

from __future__ import annotations

import functools
import inspect
import sqlite3

from store.core.errors import CatalogError


def _translated(exc: sqlite3.Error, operation: str) -> CatalogError:
    return CatalogError(f"catalog.db: {exc} (in {operation})")


def _wrap(fn, operation: str):
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except sqlite3.Error as exc:
                raise _translated(exc, operation) from exc
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _translated(exc, operation) from exc
    return call


def translate_errors(domain: str):
    """Class decorator: every public method of the class raises ``CatalogError`` (naming
    ``domain.method``) where sqlite3 raised."""
    def decorate(cls):
        for name, fn in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(fn):
                setattr(cls, name, _wrap(fn, f"{domain}.{name}"))
        return cls
    return decorate
