"""Maintenance runs on one mount at a time: a turn is the catalog's lock ``MAINTENANCE``.

gc, pack compaction and recompression move blocks between packs; two mounts sharing a
catalog doing that at once would copy the same blocks twice and could delete a pack the other
is reading from. A store with one writer (SQLite) always has the turn.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from store.core.errors import LockedError

MAINTENANCE = "maintenance"


@contextlib.contextmanager
def maintenance_turn(store) -> Iterator[bool]:
    """True inside when this process holds the turn (released at the end), False when another
    process of the store has it."""
    held = store.catalog.try_exclusive(MAINTENANCE)
    try:
        yield held
    finally:
        if held:
            store.catalog.release_exclusive(MAINTENANCE)


@contextlib.contextmanager
def required_turn(store, what: str) -> Iterator[None]:
    """The turn for a command run by hand, or LockedError saying who has it."""
    with maintenance_turn(store) as held:
        if not held:
            raise LockedError(f"another mount of this store is running gc, compaction or recompression now; "
                              f"run {what} again when it is done")
        yield
