"""Waiting for a quiet store: background work (recompression, warming the caches) runs only
while no foreground read or write has happened for a while and nothing waits to be committed."""

from __future__ import annotations

import threading
import time
from typing import Callable


def wait_until_quiet(store, stop: threading.Event, quiet: float, paused: Callable[[], None]) -> bool:
    """Wait until ``store``'s foreground I/O has been quiet for ``quiet`` seconds (its
    ``last_activity``) and its persistence worker is idle, calling ``paused()`` while it
    waits; False when ``stop`` is set first."""
    while not stop.is_set():
        idle_for = time.monotonic() - store.last_activity
        persister = store.persister
        if persister is not None and persister.idle and idle_for >= quiet:
            return True
        paused()
        stop.wait(max(0.02, quiet - idle_for))
    return False
