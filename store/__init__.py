"""sessionfs storage engine: a content-addressed, deduplicated, crash-safe session store.

The library face: ``Store`` (the engine), ``SessionStore`` (the session API) and the errors.

Layers, each importing only the ones below it (import-linter checks this; see
``[tool.importlinter]`` in pyproject.toml):

``store.cli``       the ``sessionfs`` command line; imported by nothing but its entry point
``store.services``  sessions, search, gc, recompress, verify, migrate
``store.engine``    ``Store``: lock, recovery, read path, commit path, cache, memory
``store.backends``  the object store (packs) and the catalog (SQLite)
``store.core``      pure: bytes and dicts in, no I/O, no threads

``store`` never imports ``fusefs`` (the mount registers its commands through the
``sessionfs.commands`` entry-point group).
"""

from .core.errors import (BadInputError, ConflictError, FormatError, FsError, IntegrityError, LockedError,
                          StoreError)
from .engine.store import Store
from .services.sessions import SessionStore

__all__ = ["Store", "SessionStore", "StoreError", "BadInputError", "ConflictError", "FormatError", "FsError",
           "IntegrityError", "LockedError"]
