"""Exceptions the store raises. Each message names the thing at fault."""

import errno as _errno


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class FormatError(StoreError):
    """The store directory is missing, of an unknown format version, or not a store."""


class LockedError(StoreError):
    """Another process holds the store open for writing."""


class IntegrityError(StoreError):
    """Stored bytes do not match their hash: the data is corrupt and is not returned."""

    def __init__(self, message: str, *, chunk: str | None = None, path: str | None = None):
        super().__init__(message)
        self.chunk = chunk
        self.path = path


class ConflictError(StoreError):
    """Optimistic locking failed: the caller's version is not the stored one."""


class FsError(StoreError):
    """A filesystem-level failure that maps to one errno (ENOENT, EEXIST, ...)."""

    def __init__(self, errno: int, message: str = ""):
        super().__init__(message or _errno.errorcode.get(errno, str(errno)))
        self.errno = errno


class BadInputError(StoreError, ValueError):
    """The caller gave something the store refuses: bad id, bad JSON, bad index."""


class CatalogError(StoreError):
    """The catalog database failed an operation (disk full, I/O error, damaged file); ``errno``
    is what a filesystem call would report for it (ENOSPC, EIO)."""

    def __init__(self, message: str, errno: int = _errno.EIO):
        super().__init__(message)
        self.errno = errno


class RetryableError(CatalogError):
    """A write transaction of a catalog shared by many writers lost a race with another's
    (serialization failure, deadlock) and was rolled back whole; it may be run again."""


class SearchIndexError(CatalogError):
    """The search index could not be read or updated (damaged or missing): it needs a rebuild."""


def errno_of(exc: BaseException) -> int:
    """The errno a filesystem call reports for ``exc``: its own where it has one (FsError,
    CatalogError: ENOSPC for a full catalog disk, OSError), else EIO (damaged data, any other
    failure)."""
    if isinstance(exc, (FsError, CatalogError)):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return _errno.EIO
