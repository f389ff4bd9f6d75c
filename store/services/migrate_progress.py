"""The migrator's control and counters: pause, resume, cancel, and ``progress()`` snapshots."""

from __future__ import annotations

import collections
import logging
import time

from .migrate_report import MigrationProgress, Outcome

log = logging.getLogger("sessionfs.migrate")

RECENT_FAILURES = 20


class Progress:
    """Part of ``Migrator``: pausing, cancelling and counting (state set up by ``Migrator``)."""

    def pause(self) -> None:
        """Stop before the next session (the one in progress completes or is not written at all)."""
        self._unpaused.clear()

    def resume(self) -> None:
        self._unpaused.set()

    def cancel(self) -> None:
        """End the running import and drop queued submissions; sessions already queued for
        commit are still verified. A later import starts afresh (and resumes from the record)."""
        with self._lock:
            self._queue.clear()
        self._cancel.set()
        self._unpaused.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _checkpoint(self) -> bool:
        """Between sessions: wait while paused; False when cancelled."""
        while not self._unpaused.wait(0.2):
            if self._cancel.is_set():
                return False
        return not self._cancel.is_set()

    def _reset_counters(self) -> None:
        self._state = "idle"
        self._sessions_total = self._sessions_done = 0
        self._imported = self._skipped = self._failed = 0
        self._bytes_total = self._bytes_done = 0
        self._current: str | None = None
        self._started_at: float | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None
        if not hasattr(self, "_recent"):           # kept across runs: the last failures stay visible
            self._recent: collections.deque = collections.deque(maxlen=RECENT_FAILURES)

    def progress(self) -> MigrationProgress:
        with self._lock:
            running = self._state != "idle"
            elapsed = 0.0
            if self._started_at is not None:
                end = time.monotonic() if running or self._ended_mono is None else self._ended_mono
                elapsed = end - self._started_mono
            bps = self._bytes_done / elapsed if elapsed > 0 else 0.0
            sps = self._sessions_done / elapsed if elapsed > 0 else 0.0
            eta = 0.0 if not running else None
            if running and bps > 0 and self._bytes_total >= self._bytes_done:
                eta = (self._bytes_total - self._bytes_done) / bps
            state = self._state
            if state != "idle" and not self._unpaused.is_set():
                state = "paused"
            if state != "idle" and self._cancel.is_set():
                state = "cancelling"
            return MigrationProgress(
                state=state, sessions_total=self._sessions_total, sessions_done=self._sessions_done,
                imported=self._imported, skipped=self._skipped, failed=self._failed,
                bytes_total=self._bytes_total, bytes_done=self._bytes_done, queued=len(self._queue),
                current=self._current, started_at=self._started_at, elapsed_seconds=elapsed,
                bytes_per_second=bps, sessions_per_second=sps, eta_seconds=eta,
                recent_failures=tuple(self._recent))

    def _begin(self, files: int, nbytes: int) -> None:
        with self._lock:
            if self._state == "idle":
                self._reset_counters()
                self._state = "running"
                self._started_at = time.time()
                self._started_mono = time.monotonic()
            self._sessions_total += files
            self._bytes_total += nbytes

    def _end(self) -> None:
        with self._lock:
            if not self._queue and self._running_jobs == 0:
                self._state = "idle"
                self._current = None
                self._ended_mono = time.monotonic()
                self._cancel.clear()

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            self._sessions_done += 1
            self._bytes_done += outcome.size
            if outcome.status == "imported":
                self._imported += 1
            elif outcome.status == "skipped":
                self._skipped += 1
            else:
                self._failed += 1
                self._recent.append((outcome.source, outcome.reason or "failed"))
        level = logging.INFO if outcome.status == "failed" else logging.DEBUG
        log.log(level, "%s: %s%s", outcome.source, outcome.status, f": {outcome.reason}" if outcome.reason else "")
