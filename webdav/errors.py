"""Store errors as HTTP statuses: a WebDAV request fails with the status that says what a
FUSE call would have said with its errno."""

from __future__ import annotations

import contextlib
import errno
import logging

from wsgidav.dav_error import (HTTP_BAD_REQUEST, HTTP_CONFLICT, HTTP_FORBIDDEN, HTTP_INSUFFICIENT_STORAGE,
                               HTTP_INTERNAL_ERROR, HTTP_METHOD_NOT_ALLOWED, HTTP_NOT_FOUND, DAVError)

from store.core.errors import StoreError, errno_of

log = logging.getLogger("sessionfs.webdav")

_STATUS = {
    errno.ENOENT: HTTP_NOT_FOUND,
    errno.EEXIST: HTTP_METHOD_NOT_ALLOWED,
    errno.ENOTEMPTY: HTTP_CONFLICT,
    errno.EISDIR: HTTP_CONFLICT,
    errno.ENOTDIR: HTTP_CONFLICT,
    errno.EPERM: HTTP_FORBIDDEN,
    errno.EACCES: HTTP_FORBIDDEN,
    errno.EROFS: HTTP_FORBIDDEN,
    errno.EINVAL: HTTP_BAD_REQUEST,
    errno.ENAMETOOLONG: HTTP_BAD_REQUEST,
    errno.EFBIG: HTTP_INSUFFICIENT_STORAGE,
    errno.ENOSPC: HTTP_INSUFFICIENT_STORAGE,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status for a store error."""
    return _STATUS.get(errno_of(exc), HTTP_INTERNAL_ERROR)


@contextlib.contextmanager
def translated(what: str):
    """Turn store errors raised inside into ``DAVError`` with the matching status; ``what``
    (the path) goes into the message and the log."""
    try:
        yield
    except DAVError:
        raise
    except (StoreError, OSError) as exc:
        status = status_of(exc)
        if status == HTTP_INTERNAL_ERROR:
            log.error("%s: %s", what, exc)
        raise DAVError(status, context_info=f"{what}: {exc}") from None
