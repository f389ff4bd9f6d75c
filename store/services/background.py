"""Maintenance in the mount daemon: background gc and recompression, started by the engine
through the callable ``maintenance(...)`` returns (the engine never imports the services)."""

from __future__ import annotations

import functools
from typing import Callable

from store.services.gc import DEFAULT_GRACE, BackgroundGC, GcOptions
from store.services.recompress import (DEFAULT_COLD_AGE, DEFAULT_CPU_SHARE, DEFAULT_LEVEL, CompressOptions,
                                       Compressor)


class Background:
    """Maintenance running in this process (the mount daemon): gc as an idle task of the
    persistence worker, recompression in a low-priority thread."""

    def __init__(self, store, *, gc: bool, gc_grace: float, compress: bool, level: int, cold_age: float,
                 cpu_share: float):
        self.store = store
        self.gc = BackgroundGC(store, GcOptions(grace=gc_grace)) if gc else None
        self.compressor = Compressor(store, CompressOptions(level=level, cold_age=cold_age, cpu_share=cpu_share)) \
            if compress else None

    def statistics(self) -> dict:
        return {"gc": self.gc.statistics() if self.gc else None,
                "compressor": self.compressor.statistics() if self.compressor else None}

    def stop(self) -> None:
        if self.compressor is not None:
            self.compressor.stop()
        if self.gc is not None:
            self.gc.stop()


def maintenance(*, gc: bool = False, gc_grace: float = DEFAULT_GRACE, compress: bool = False,
                level: int = DEFAULT_LEVEL, cold_age: float = DEFAULT_COLD_AGE,
                cpu_share: float = DEFAULT_CPU_SHARE) -> Callable[[object], Background] | None:
    """What ``Store.open(maintenance=...)`` starts in a writable store: garbage collection of
    chunks unreferenced for ``gc_grace`` seconds with pack compaction, and recompression of
    blocks older than ``cold_age`` seconds at zstd ``level`` using at most ``cpu_share`` of
    one core. None when neither is asked for."""
    if not (gc or compress):
        return None
    return functools.partial(Background, gc=gc, gc_grace=gc_grace, compress=compress, level=level,
                             cold_age=cold_age, cpu_share=cpu_share)
