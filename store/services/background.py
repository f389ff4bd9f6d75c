"""Maintenance in the mount daemon: background gc and recompression, started by the engine
through the callable ``maintenance(...)`` returns (the engine never imports the services)."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Callable

from store.core.errors import RetryableError
from store.engine.idle import wait_until_quiet
from store.services.exclusive import maintenance_turn
from store.services.gc import DEFAULT_GRACE, BackgroundGC, GcOptions
from store.services.dictionary_training import ensure_dictionary
from store.services.recompress import (BATCH_BYTES, DEFAULT_COLD_AGE, DEFAULT_CPU_SHARE, DEFAULT_LEVEL,
                                       CompressOptions, CompressResult, account, candidates, run_unit, switch_over,
                                       work_units)

log = logging.getLogger("sessionfs.recompress")


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


class Compressor:
    """The background compressor thread (see the module doc)."""

    def __init__(self, store, options: CompressOptions | None = None, *, poll: float = 30.0):
        self.store = store
        self.options = options or CompressOptions()
        self.poll = poll
        self.result = CompressResult()
        self.state = "starting"
        self.last_error: str | None = None
        self.busy_seconds = 0.0
        self._stop = threading.Event()
        self._skip: set[int] = set()        # damaged blocks (this process)
        self._thread = threading.Thread(target=self._run, name="sessionfs-compress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def statistics(self) -> dict:
        return {"state": self.state, "level": self.options.level, "cold_age": self.options.cold_age,
                "cpu_share": self.options.cpu_share, "busy_seconds": round(self.busy_seconds, 3),
                "last_error": self.last_error, **self.result.as_dict()}

    def _wait_quiet(self) -> bool:
        """Wait until foreground I/O has been quiet for ``quiet`` seconds; False when stopping."""
        return wait_until_quiet(self.store, self._stop, self.options.quiet, self._paused)

    def _paused(self) -> None:
        self.state = "paused"

    def _throttle(self, worked: float) -> None:
        self.busy_seconds += worked
        share = min(1.0, max(0.01, self.options.cpu_share))
        self._stop.wait(worked * (1 / share - 1))

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass
        while not self._stop.is_set():
            try:
                worked = self._round()
            except RetryableError as exc:
                # Another mount's commit touched the same blocks (a shared catalog): not a failure.
                log.debug("background compression lost a race with another writer (%s); retrying later", exc)
                worked = None
            except Exception as exc:  # noqa: BLE001 - keep the daemon alive; try again later
                log.exception("background compression failed; retrying later")
                self.last_error = f"{type(exc).__name__}: {exc}"
                worked = None
            if worked is None:
                self.state = "idle"
                self._stop.wait(self.poll)

    def _round(self) -> bool | None:
        """Handle one batch of cold blocks (on the mount whose turn it is); None when there is
        nothing to do."""
        if not self._wait_quiet():
            return False
        with maintenance_turn(self.store) as mine:
            return self._batch() if mine else None

    def _batch(self) -> bool | None:
        rows = [r for r in candidates(self.store.catalog.reader(), self.options.cold_age, 256)
                if r.id not in self._skip]
        if not rows:
            return None
        # Only with work in hand: checking whether a dictionary is due counts the store's small
        # blocks, a scan that must not compete with foreground reads of an idle store.
        t0 = time.monotonic()
        zdict, trained = ensure_dictionary(self.store, self.options)
        self.result.dictionaries_trained += trained
        self._throttle(time.monotonic() - t0)
        batch, nbytes = [], 0
        for unit in work_units(self.store, rows, self.options, set(), self._skip):
            if self._stop.is_set() or not self._wait_quiet():
                break
            self.state = "working"
            t0 = time.monotonic()
            prepared, bad = run_unit(self.store, unit, self.options, zdict)
            self._throttle(time.monotonic() - t0)
            self._skip.update(bad)
            self.result.skipped_damaged += len(bad)
            batch.extend(prepared)
            nbytes += sum(len(p.framed or b"") for p in prepared)
            if len(batch) >= 16 or nbytes >= BATCH_BYTES:
                break
        if batch and not self._stop.is_set():
            level = self.options.level
            account(self.result, self.store.run_in_worker(lambda: switch_over(self.store, batch, level)))
        return True
