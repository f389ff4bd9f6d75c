"""The mount daemon's memory bound: how the limit is divided, and a governor that holds it.

Where a mount's memory goes, and what bounds each part under ``--memory-limit``
(``plan`` divides the limit; it is pure, so its arithmetic is tested on numbers):

- decoded blocks: the block cache (``--cache-size``), at most half the limit;
- requests in flight: pyfuse3 handles at most ``max_tasks`` at once, each on a
  worker thread whose catalog connection keeps at most ``reader_cache_kib`` of
  pages (a thread's connection closes when the thread exits);
- whole-file writes queued by the session API and the importer, held in memory
  until committed: ``pending_bytes`` (writers wait for room). FUSE writes go to
  staging files on disk, never to memory;
- the importer behind ``import/`` parses a legacy file whole (about twice its
  size in memory) and reads each attachment whole: it takes files up to
  ``import_file_bytes`` and attachments up to ``import_attachment_bytes`` and
  reports larger ones as failed, naming the bound;
- the rest (``BASE_BYTES``): the interpreter, SQLite's writer cache, the
  persistence worker's block being built, the background compressor's block,
  the inode attribute cache (``attr_cache``, 8 MiB when full), the directory cache
  (``dir_cache``, about 5 MiB) and small files' chunk locations (about 3 MiB, 6 at most).

``MemoryGovernor`` is the safety net for what the plan can only estimate: it
samples the resident set (``/proc/self/statm``) and, above ``HIGH`` of the limit,
shrinks the block cache and hands freed heap back to the system; the cache grows
back once the resident set is below ``LOW`` again. ``tune_malloc`` keeps glibc
from holding freed memory in per-thread arenas and from serving the cache's 1 MiB
blocks out of the heap, where freeing them would not lower the resident set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from dataclasses import asdict, dataclass

from .cache import ByteLRU
from store.core.errors import BadInputError

log = logging.getLogger("sessionfs.memory")

MiB = 1024 * 1024
DEFAULT_LIMIT = 512 * MiB
BASE_BYTES = 72 * MiB         # interpreter and libraries (~31 MiB), SQLite writer (16 MiB), worker blocks,
                              # attribute cache (8 MiB), directory cache and small files' locations (~8 MiB)
MIN_HEADROOM = 24 * MiB       # beyond base and cache: requests in flight, queued writes, imports
TASK_BYTES = 3 * MiB // 2     # one request in flight: thread stack, catalog pages, request buffers
MIN_TASKS, MAX_TASKS = 4, 64
HIGH, LOW = 0.85, 0.70        # governor thresholds, as shares of the limit


@dataclass(frozen=True)
class MemoryPlan:
    """How a limit of ``limit`` bytes is divided (see the module docstring)."""
    limit: int
    cache_bytes: int
    max_tasks: int
    reader_cache_kib: int
    pending_bytes: int
    import_file_bytes: int
    import_attachment_bytes: int


def plan(limit: int, cache_bytes: int) -> MemoryPlan:
    """Divide ``limit`` around a block cache of ``cache_bytes``; BadInputError if it cannot hold."""
    if cache_bytes > limit // 2:
        raise BadInputError(f"a cache of {_mib(cache_bytes)} does not fit a memory limit of {_mib(limit)}: "
                            f"the cache may take at most half of it ({_mib(limit // 2)})")
    headroom = limit - BASE_BYTES - cache_bytes
    if headroom < MIN_HEADROOM:
        raise BadInputError(f"a memory limit of {_mib(limit)} is too small for a cache of {_mib(cache_bytes)}: "
                            f"the daemon needs {_mib(BASE_BYTES + MIN_HEADROOM)} besides its cache")
    max_tasks = max(MIN_TASKS, min(MAX_TASKS, int(headroom * 0.4) // TASK_BYTES))
    return MemoryPlan(
        limit=limit,
        cache_bytes=cache_bytes,
        max_tasks=max_tasks,
        reader_cache_kib=1024 if headroom >= 64 * MiB else 256,
        pending_bytes=max(4 * MiB, min(256 * MiB, int(headroom * 0.2))),
        import_file_bytes=int(headroom * 0.4) // 2,
        import_attachment_bytes=int(headroom * 0.4),
    )


def next_cache_capacity(rss: int, limit: int, capacity: int, held: int, configured: int) -> int:
    """The block cache's capacity after seeing a resident set of ``rss`` bytes.

    Above HIGH of the limit the cache gives up what it holds beyond the excess over
    LOW (never below an eighth of its configured size, which keeps metadata hot);
    below LOW it grows back by an eighth of its configured size a step."""
    floor = configured // 8
    if rss > limit * HIGH:
        return max(floor, min(capacity, held - int(rss - limit * LOW)))
    if rss < limit * LOW and capacity < configured:
        return min(configured, capacity + max(configured // 8, 1))
    return capacity


def resident_bytes() -> int:
    """This process's resident set in bytes."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    """The largest resident set this process has had (VmHWM), in bytes."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def tune_malloc() -> None:
    """glibc only (elsewhere a no-op): two arenas instead of eight per core, and allocations of
    256 KiB and more (decoded blocks, request buffers) mapped on their own so that freeing
    them returns the memory at once (a fixed threshold also stops glibc raising it)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 2)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def trim_heap() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@dataclass(frozen=True)
class MemoryStatistics:
    """Bytes. ``rss`` now and ``peak_rss`` (VmHWM) of the daemon; ``cache_capacity`` is the
    block cache's bound now (below ``cache_configured`` while the governor holds it down);
    ``pressure_events``: samples above HIGH of the limit."""
    limit: int
    rss: int
    peak_rss: int
    cache_capacity: int
    cache_configured: int
    pressure_events: int
    max_tasks: int

    def as_dict(self) -> dict:
        return asdict(self)


class MemoryGovernor:
    """A thread that holds the resident set under the plan's limit by resizing ``cache``."""

    INTERVAL = 0.25

    def __init__(self, memory: MemoryPlan, cache: ByteLRU):
        self.plan = memory
        self.cache = cache
        self.pressure_events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sessionfs-memory", daemon=True)

    def start(self) -> "MemoryGovernor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def check(self) -> None:
        """One sample: shrink or regrow the cache as ``next_cache_capacity`` says."""
        rss = resident_bytes()
        stats = self.cache.statistics()
        capacity = next_cache_capacity(rss, self.plan.limit, stats.capacity_bytes, stats.bytes_held,
                                       self.plan.cache_bytes)
        if rss > self.plan.limit * HIGH:
            self.pressure_events += 1
            if self.pressure_events == 1 or self.pressure_events % 100 == 0:
                log.warning("resident memory %s is near the limit of %s: cache held to %s",
                            _mib(rss), _mib(self.plan.limit), _mib(capacity))
        if capacity != stats.capacity_bytes:
            self.cache.set_capacity(capacity)
        if capacity < stats.capacity_bytes:
            trim_heap()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the governor must outlive a bad sample
                log.exception("memory governor check failed")

    def statistics(self) -> MemoryStatistics:
        return MemoryStatistics(self.plan.limit, resident_bytes(), peak_resident_bytes(),
                                self.cache.statistics().capacity_bytes, self.plan.cache_bytes,
                                self.pressure_events, self.plan.max_tasks)


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"
