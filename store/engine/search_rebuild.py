"""Rebuilding the search index from the files: in the background at a writable open
(missing, outdated or damaged index; an interrupted rebuild is resumed), or in the
foreground on demand (``sessionfs reindex``).

The index is replaced by an empty one in state REBUILDING; from then on every commit
indexes what it changes (``search_upkeep``), and the rebuild indexes the session
directories in short write transactions, skipping files a commit has indexed meanwhile.
Searches answer from what is indexed so far; statistics and the CLI say it is rebuilding.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from store.backends.catalog.search import REBUILDING
from store.core.errors import CatalogError, SearchIndexError, StoreError

log = logging.getLogger("sessionfs.search")

#: Sessions per transaction when rebuilding, at most.
REBUILD_BATCH = 100
#: A background rebuild ends its write transaction after about this long (commits wait no longer).
REBUILD_BATCH_SECONDS = 0.05
#: ... and pauses this long between transactions, so waiting writers take the lock first.
REBUILD_PAUSE = 0.005
#: A transaction failing with a catalog error (full disk, busy) is retried this many times,
#: after a pause doubling from REBUILD_RETRY_PAUSE seconds (about a minute in all).
REBUILD_RETRIES = 6
REBUILD_RETRY_PAUSE = 1.0


@dataclass
class RebuildReport:
    sessions: int
    files: int
    seconds: float
    reason: str | None = None


def _hook(point: str) -> None:
    """Test hook (tests replace it): the rebuild calls it after each transaction ("batch")
    and before retrying a failed one ("retry")."""


class IndexRebuild:
    """The rebuild half of ``search_upkeep.TextIndex``: it provides ``catalog``, ``root``,
    ``sessions_ino``, ``problem``, ``garbage``, ``statistics()``, ``session_dirs(view)``,
    ``_session_files(view, dir)``
    and ``_refresh_inode(view, ino, content_changed)``."""

    def __init__(self) -> None:
        #: The report of the background rebuild started at open, once it has finished.
        self.rebuilt_at_open: RebuildReport | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def rebuild_if_needed(self) -> None:
        """At a writable open: rebuild a missing, outdated or damaged index in the background
        (searches answer from what is indexed so far and say so), or finish a rebuild that an
        earlier process left unfinished."""
        reason = self.problem or ("holding rows of old file versions" if self.garbage else None)
        if reason is None:
            if self.statistics().state == REBUILDING:
                log.warning("search index of %s: resuming an interrupted rebuild", self.root)
                self._start_worker("interrupted")
            return
        log.warning("search index of %s is %s: rebuilding it from the files in the background",
                    self.root, reason)
        try:
            self._begin_rebuild()
        except StoreError as exc:
            self._failed(reason, exc)
            return
        self._start_worker(reason)

    def _failed(self, reason: str, exc: BaseException) -> None:
        # The store stays usable; only searching is refused until a rebuild succeeds.
        self.problem = f"{reason}, and rebuilding it failed: {exc}"
        log.error("search index of %s could not be rebuilt (%s); searches are refused until "
                  "'sessionfs reindex' succeeds", self.root, exc)

    def _start_worker(self, reason: str) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._background, args=(reason,), name="search-rebuild",
                                        daemon=True)
        self._worker.start()

    def _background(self, reason: str) -> None:
        total = [0]

        def progress(n: int) -> None:
            before = total[0]
            total[0] += n
            if total[0] // 1000 > before // 1000:
                log.info("search index rebuild: %d sessions done", total[0])
        try:
            report = self._fill(progress, reason=reason, background=True)
        except (StoreError, OSError) as exc:        # OSError: a pack that cannot be read (EIO)
            self._failed(reason, exc)
            return
        if report is not None:
            log.warning("search index rebuilt: %d files of %d sessions in %.1f s", report.files, report.sessions,
                        report.seconds)
            self.rebuilt_at_open = report

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to end; False if it still runs after ``timeout`` s."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def stop(self) -> None:
        """Stop a background rebuild between two transactions (the next writable open resumes it)."""
        self._stop.set()
        self.wait()
        self._worker = None
        self._stop.clear()

    def rebuild(self, progress: Callable[[int], None] | None = None, *, reason: str | None = None) -> RebuildReport:
        """Drop the index and rebuild it from the files now (``sessionfs reindex``).
        ``progress(n)`` after each n sessions."""
        self.stop()
        self._begin_rebuild()
        report = self._fill(progress, reason=reason)
        with self.catalog.write() as view:
            view.search.optimize()
        return report

    def _begin_rebuild(self) -> None:
        """Replace the index by an empty one in state REBUILDING: from this commit on, every
        commit indexes what it changes, and ``_fill`` indexes the rest."""
        with self.catalog.write() as view:
            view.search.reset()
        self.problem, self.garbage = None, False

    def _fill(self, progress: Callable[[int], None] | None, *, reason: str | None,
              background: bool = False) -> RebuildReport | None:
        """Index every session directory (a list taken now) in short write transactions, then
        set the state ``ok``. A file that already has documents was indexed by a commit since
        the rebuild began (they are current) and is skipped; a session made after the list
        was taken is indexed by its own commits. Returns None when stopped, or when the state
        stopped being REBUILDING (an index update failed meanwhile: the next open rebuilds)."""
        started = time.monotonic()
        sessions = self.session_dirs(self.catalog.reader())
        files, done = 0, 0
        while True:
            if self._stop.is_set():
                return None
            batch = self._retried(lambda: self._batch(sessions, done, background))
            if batch is None:
                return None
            start, (done, added) = done, batch
            files += added
            if progress is not None and done > start:
                progress(done - start)
            if done == len(sessions):
                return RebuildReport(len(sessions), files, time.monotonic() - started, reason)
            _hook("batch")
            if background:
                time.sleep(REBUILD_PAUSE)

    def _retried(self, batch: Callable[[], tuple[int, int] | None]) -> tuple[int, int] | None:
        """``batch()``, run again after a pause when it fails with a catalog error that is not
        the index's (a full disk, a busy catalog: its transaction changed nothing); None when
        stopped meanwhile or when ``batch`` says so."""
        attempt = 0
        while True:
            try:
                return batch()
            except SearchIndexError:
                raise
            except CatalogError as exc:
                if attempt == REBUILD_RETRIES:
                    raise
                pause = REBUILD_RETRY_PAUSE * 2 ** attempt
                attempt += 1
                log.warning("search index of %s: a rebuild transaction failed (%s); retrying in %.1f s",
                            self.root, exc, pause)
                _hook("retry")
                if self._stop.wait(pause):
                    return None

    def _batch(self, sessions: list[int], done: int, background: bool) -> tuple[int, int] | None:
        """Index ``sessions`` from ``done`` on in one write transaction, for at most
        REBUILD_BATCH sessions (and, ``background``, about REBUILD_BATCH_SECONDS); returns
        (sessions done now, files indexed), or None when the index is no longer being rebuilt."""
        files = 0
        with self.catalog.write() as view:
            index = view.search
            if index.statistics().state != REBUILDING:
                log.error("search index of %s: the rebuild stops, the index is no longer being rebuilt", self.root)
                return None
            start, deadline = done, time.monotonic() + REBUILD_BATCH_SECONDS
            while done < len(sessions) and done - start < REBUILD_BATCH and (
                    not background or done == start or time.monotonic() < deadline):
                for ino in self._session_files(view, sessions[done]):
                    if not index.is_indexed(ino):
                        files += self._refresh_inode(view, ino, True)
                done += 1
            if done == len(sessions):
                index.rebuild_finished()
            else:
                index.rebuild_progress(done, len(sessions))
        return done, files
