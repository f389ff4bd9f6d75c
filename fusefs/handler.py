"""Only ``pyfuse3.FUSEError`` may leave a FUSE operation handler: any other exception ends
pyfuse3's session loop and with it the mount. ``handler`` wraps an operation so that store
errors keep their errno, integrity and other store errors are EIO (logged), and an unexpected
exception is logged with its traceback and answered with EIO.
"""

from __future__ import annotations

import errno
import functools
import logging

import pyfuse3

from store.core.errors import CatalogError, FsError, IntegrityError, StoreError, errno_of

log = logging.getLogger("sessionfs.fuse")


def handler(fn):
    """Let only FUSEError leave a handler; log what is not a plain errno."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except (FsError, CatalogError, OSError) as exc:
            if isinstance(exc, CatalogError):
                log.error("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(errno_of(exc)) from None
        except IntegrityError as exc:
            log.error("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except StoreError as exc:
            log.error("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Exception:  # noqa: BLE001 - must not kill the mount
            log.exception("unexpected error in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
    return wrapper
