"""The persistence worker: commits sealed overlays and API write groups in batches.

One thread. It takes queued items in order, builds their new chunk lists
(chunking, hashing, compression, pack appends: all the slow work, outside
any lock), fsyncs the packs, then commits the whole batch in one catalog
transaction. Callers never wait for it, except ``Barrier.wait`` (fsync,
flush). A batch that fails (disk full, I/O error) is rolled back, its pack
bytes truncated away, and retried after a pause with the same items in the
same order, so nothing queued is lost; barriers waiting on it get the error.

Maintenance shares the thread (it is the only writer of packs, blocks and
chunks): ``call(fn)`` queues a function that runs between batches (its error
goes to its caller, nothing is retried), and ``add_idle_task(step)`` registers
a background step that runs only while the queue is empty. ``step()`` does one
bounded piece of work and returns the seconds until it wants to run again;
queued items always go first, so maintenance delays a commit by at most one
step. Garbage collection and the background compressor use both.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from store.backends.catalog.interface import CatalogView
from store.core.errors import CatalogError, FsError, StoreError, errno_of
from .overlay import Overlay

log = logging.getLogger("sessionfs.persist")

BATCH_MAX_ITEMS = 256
BATCH_MAX_BYTES = 64 * 1024 * 1024
BARRIER_COMPANY = 2 * 1024 * 1024   # bytes queued behind a barrier that may still join its batch
RETRY_DELAY = 1.0
GATHER = 0.01       # seconds a batch waits for more items (none once a barrier or call is queued)
#: ``bursts`` (a shared store): an item queued while the worker is idle commits at once; items
#: queued while it commits (a burst) wait for company until BURST_GAP passes with none,
#: BURST_GATHER at most.
BURST_GAP = 0.02
BURST_GATHER = 0.05


@dataclass
class PathGroup:
    """Whole-file writes and deletions by path that commit together or not at all."""
    gen: int
    writes: list[tuple[str, bytes | None]]
    trees: list[str] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Called as on_commit(view) inside the group's savepoint, before its deletions and writes: it
    # may check the committed tree (preconditions) and add catalog rows that must commit with the
    # files or not at all (the migration record). Raise FsError or BadInputError to refuse the
    # group (rolled back, ``error`` set); anything else fails the whole batch, which is retried.
    on_commit: Callable[[CatalogView], None] | None = None

    @property
    def nbytes(self) -> int:
        return sum(len(d) for _, d in self.writes if d is not None)


class Call:
    """A function to run in the worker between batches; ``wait()`` returns its result."""

    def __init__(self, fn: Callable[[], object]):
        self.fn = fn
        self.result: object = None
        self.error: BaseException | None = None
        self._event = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller
            self.error = exc
        self._event.set()

    def wait(self, timeout: float | None = None) -> object:
        if not self._event.wait(timeout):
            raise FsError(errno.ETIMEDOUT, "timed out waiting for the persistence worker")
        if self.error is not None:
            raise self.error
        return self.result


class IdleTask:
    """A maintenance step the worker runs while its queue is empty (see the module doc)."""

    def __init__(self, step: Callable[[], float], name: str, delay: float = 0.0):
        self.step = step
        self.name = name
        self.due = time.monotonic() + delay


class Barrier:
    """Done when every item queued before it is committed (durably, if asked)."""

    def __init__(self, durable: bool):
        self.durable = durable
        self.error: BaseException | None = None
        self._event = threading.Event()

    def set(self, error: BaseException | None = None) -> None:
        self.error = error
        self._event.set()

    def wait(self, timeout: float | None = None) -> None:
        if not self._event.wait(timeout):
            raise FsError(errno.ETIMEDOUT, "timed out waiting for the persistence queue")
        if self.error is not None:
            raise self.error


@dataclass
class PersistStatistics:
    queued_items: int
    queued_bytes: int
    batches: int
    items_committed: int
    bytes_committed: int
    failures: int
    last_error: str | None


class Persister:
    def __init__(self, commit_batch, checkpoint, sync_interval: float = 5.0, gather: float = GATHER, *,
                 bursts: bool = False):
        self._commit_batch = commit_batch      # (list of items, durable) -> None, raises on failure
        self._checkpoint = checkpoint
        self._sync_interval = sync_interval
        # Group commit: a commit costs about as much CPU for one closed file as for dozens (the
        # transaction, the session and search hooks, the kernel cache round trip), and a burst
        # of small files otherwise commits one by one, each commit competing with the FUSE
        # handlers for the 2 cores and the GIL. Closed files are safe in staging meanwhile.
        self._gather = gather
        # On a shared store every commit puts a pack object and other mounts wait for it: a file
        # closed alone commits at once (no gather), files closed in a burst share one pack.
        self._bursts = bursts
        self._first_queued = 0.0                # when the oldest queued item arrived (0: long ago)
        self._last_queued = 0.0                 # when the newest one did
        self._alone = False                     # the oldest came while the worker was idle
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._queued_bytes = 0
        self.batches = self.items_committed = self.bytes_committed = self.failures = 0
        self.last_error: str | None = None
        self._idle_tasks: list[IdleTask] = []
        self._thread = threading.Thread(target=self._run, name="sessionfs-persist", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item) -> None:
        with self._cond:
            if self._stop:
                raise StoreError("the store is closing")
            now = time.monotonic()
            if not self._queue:
                self._first_queued = now
                self._alone = not self._busy
            self._last_queued = now
            self._queue.append(item)
            self._queued_bytes += _item_bytes(item)
            self._cond.notify_all()

    def call(self, fn: Callable[[], object]) -> Call:
        """Queue ``fn`` to run in the worker thread; ``.wait()`` on the result for its value."""
        c = Call(fn)
        if threading.current_thread() is self._thread:
            c.run()             # already in the worker: queueing would deadlock
        else:
            self.submit(c)
        return c

    def in_worker(self) -> bool:
        return threading.current_thread() is self._thread

    def add_idle_task(self, step: Callable[[], float], name: str, delay: float = 0.0) -> IdleTask:
        """Run ``step()`` whenever the queue is empty and its last returned delay has passed."""
        task = IdleTask(step, name, delay)
        with self._cond:
            self._idle_tasks.append(task)
            self._cond.notify_all()
        return task

    def remove_idle_task(self, task: IdleTask) -> None:
        with self._cond:
            if task in self._idle_tasks:
                self._idle_tasks.remove(task)

    def wake_idle_task(self, task: IdleTask) -> None:
        """Make ``task`` due now (new work for it)."""
        with self._cond:
            task.due = time.monotonic()
            self._cond.notify_all()

    def barrier(self, durable: bool) -> Barrier:
        b = Barrier(durable)
        self.submit(b)
        return b

    def expedite(self, ino: int) -> Barrier:
        """A durable barrier for the sealed writes of file ``ino`` alone (fsync of a file).

        Its queued overlays move, in their order, to the head of the queue with the barrier
        behind them, so the fsync waits for its own file, not for every file closed before it
        (those commit next). Files are independent, so this order is as good as any; but when a
        path group or a call is queued ahead of the file's last overlay, the order of those
        matters, and the barrier goes to the tail like ``barrier``."""
        b = Barrier(durable=True)
        with self._cond:
            if self._stop:
                raise StoreError("the store is closing")
            queued = list(self._queue)
            mine = [i for i in queued if isinstance(i, Overlay) and i.ino == ino]
            last = queued.index(mine[-1]) if mine else -1
            if any(isinstance(i, (PathGroup, Call)) for i in queued[:last + 1]):
                self._queue.append(b)
            else:
                for ov in mine:
                    self._queue.remove(ov)
                self._queue.extendleft(reversed(mine + [b]))
            self._cond.notify_all()
        return b

    def wait_for_room(self, limit_bytes: int) -> None:
        """Back-pressure: block while more than ``limit_bytes`` wait in the queue."""
        with self._cond:
            while self._queued_bytes > limit_bytes and not self._stop:
                self._cond.wait(0.5)

    def statistics(self) -> PersistStatistics:
        with self._cond:
            return PersistStatistics(len(self._queue), self._queued_bytes, self.batches, self.items_committed,
                                     self.bytes_committed, self.failures, self.last_error)

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def stop(self) -> None:
        """Commit everything queued, then end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    # -- the thread --------------------------------------------------------
    def _take_batch(self) -> list:
        """Items of one kind, each overlay inode at most once, within the size bounds."""
        batch: list = []
        nbytes = 0
        inos: set[int] = set()
        kind = None
        limit = None            # bytes this batch may hold once it holds a barrier
        while self._queue and len(batch) < BATCH_MAX_ITEMS and nbytes < BATCH_MAX_BYTES:
            item = self._queue[0]
            if isinstance(item, Barrier):
                batch.append(self._queue.popleft())
                # What follows a barrier may join its batch (one commit, one pack fsync, where two
                # commits cost two), but only a little of it: who waits for it waits for all of it.
                limit = nbytes + BARRIER_COMPANY if limit is None else limit
                continue
            if limit is not None and nbytes + _item_bytes(item) > limit:
                break
            this = type(item)
            if kind is not None and this is not kind:
                break
            if isinstance(item, Call):          # one call at a time, never mixed with commits
                batch.append(self._queue.popleft())
                break
            if isinstance(item, Overlay):
                if item.ino in inos:
                    break
                inos.add(item.ino)
            kind = this
            batch.append(self._queue.popleft())
            nbytes += _item_bytes(item)
        return batch

    def _gather_left(self, now: float) -> float:
        """Seconds the queued items may still wait for company before they commit."""
        if (len(self._queue) >= BATCH_MAX_ITEMS or self._queued_bytes >= BATCH_MAX_BYTES
                or any(isinstance(i, (Barrier, Call)) for i in self._queue)):
            return 0.0
        if not self._bursts:
            return self._first_queued + self._gather - now
        if self._alone and len(self._queue) == 1:
            return 0.0
        return min(self._first_queued + BURST_GATHER, self._last_queued + BURST_GAP) - now

    def _due_idle_task(self) -> IdleTask | None:
        return min(self._idle_tasks, key=lambda t: t.due, default=None)

    def _run_idle(self, task: IdleTask) -> None:
        try:
            delay = task.step()
        except Exception:  # noqa: BLE001 - maintenance must never stop persistence
            log.exception("background task %s failed; retrying in a minute", task.name)
            delay = 60.0
        task.due = time.monotonic() + max(0.0, float(60.0 if delay is None else delay))

    def _run(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            idle = None
            with self._cond:
                while not self._stop:
                    now = time.monotonic()
                    if self._queue:
                        hold = self._gather_left(now)
                        if hold <= 0:
                            break
                        self._cond.wait(hold)
                        continue
                    remaining = self._sync_interval - (now - last_checkpoint)
                    if remaining <= 0:
                        break
                    task = self._due_idle_task()
                    if task is not None and task.due <= now:
                        idle = task         # maintenance only while nothing is queued
                        break
                    self._cond.wait(remaining if task is None else min(remaining, task.due - now))
                if idle is None:
                    if not self._queue and self._stop:
                        break
                    batch = self._take_batch()
                    self._first_queued = 0.0        # what is left has waited its turn already
                    self._busy = bool(batch)
            if idle is not None:
                self._run_idle(idle)
                continue
            if time.monotonic() - last_checkpoint >= self._sync_interval:
                # Every sync_interval, busy or not: this bounds what a power loss can take.
                self._safe_checkpoint()
                last_checkpoint = time.monotonic()
            if not batch:
                continue
            work = [i for i in batch if not isinstance(i, Barrier)]
            barriers = [i for i in batch if isinstance(i, Barrier)]
            durable = any(b.durable for b in barriers)
            if work and isinstance(work[0], Call):
                work[0].run()       # its error goes to its caller; nothing to retry
                work = []
            try:
                if work or durable:
                    self._commit_batch(work, durable)
            except BaseException as exc:  # noqa: BLE001 - any failure must keep the queue
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("persistence batch of %d items failed, will retry: %s", len(work), self.last_error)
                error = exc if isinstance(exc, StoreError) and not isinstance(exc, CatalogError) \
                    else FsError(errno_of(exc), str(exc))
                with self._cond:
                    self._queue.extendleft(reversed(work))
                    # Barriers queued behind the failed items wait on them too: they get the
                    # error now instead of hanging until a retry succeeds (it may never).
                    behind = [i for i in self._queue if isinstance(i, Barrier)]
                    for b in behind:
                        self._queue.remove(b)
                    for b in barriers + behind:
                        b.set(error)
                    self._busy = False
                    if self._stop:
                        # Closing with a failing disk: stop retrying; staged overlays replay next open.
                        self._queue.clear()
                        self._queued_bytes = 0
                        break
                    self._cond.wait(RETRY_DELAY)
                continue
            nbytes = sum(_item_bytes(i) for i in work)
            with self._cond:
                self.batches += 1
                self.items_committed += len(work)
                self.bytes_committed += nbytes
                self._queued_bytes -= nbytes
                self._busy = False
                self._cond.notify_all()
            for b in barriers:
                b.set()
        self._safe_checkpoint()

    def _safe_checkpoint(self) -> None:
        try:
            self._checkpoint()
        except Exception as exc:  # noqa: BLE001 - a failed checkpoint is retried next time
            log.warning("catalog checkpoint failed: %s", exc)


def _item_bytes(item) -> int:
    if isinstance(item, Overlay):
        return item.dirty.total()
    if isinstance(item, PathGroup):
        return item.nbytes
    return 0

