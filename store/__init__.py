"""sessionfs storage engine: a content-addressed, deduplicated, crash-safe session store."""

from .engine import Store
from .errors import (BadInputError, ConflictError, FormatError, FsError, IntegrityError, LockedError,
                     StoreError)

__all__ = ["Store", "StoreError", "BadInputError", "ConflictError", "FormatError", "FsError",
           "IntegrityError", "LockedError"]
