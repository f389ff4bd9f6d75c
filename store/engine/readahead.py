"""Read-ahead: the blocks a sequential reader will want next, decoded and verified in advance.

A cold read is decompression (or FLAC decoding) and a SHA-256 check of every chunk: done one
block at a time on the reading thread, one core works while the other waits for the next
request. When a file is read where its last read ended, ``ReadAhead`` hands the blocks of the
next ``WINDOW`` bytes to ``WORKERS`` threads (zstd, FLAC, hashlib and pread let go of the
GIL), and puts what they decode into the block cache. A reader that needs a block being
decoded waits for it instead of decoding it again (``claim``). Whatever goes wrong in a
worker is dropped: the reader loads the block itself and reports it the usual way.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

WINDOW = 8 * 1024 * 1024      # bytes ahead of a sequential reader
WORKERS = 2                   # the machine's cores; more only queue on the GIL
TRACKED = 256                 # files whose last read end is remembered
SLACK = 1024 * 1024           # a read starting this far before the last one's end is sequential


class ReadAhead:
    def __init__(self, load: Callable[[int], object], store: Callable[[int, object], None]):
        self._load = load               # block id -> decoded block (raises on failure)
        self._store = store             # (block id, decoded block) -> None: into the cache
        self._lock = threading.Lock()
        self._loading: dict[int, Future] = {}
        self._ends: dict[int, tuple[int, int]] = {}  # ino -> (its last read's end, read ahead to)
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def window(self, ino: int, offset: int, end: int) -> tuple[int, int] | None:
        """Note a read of [offset, end) of ``ino``, from a file that goes on after ``end``.
        Returns the range to read ahead now, or None: the read is not near where the file was
        being read (the kernel's read-ahead sends requests that may arrive out of order, so
        within ``SLACK`` of it counts), or what lies ahead is already under way."""
        with self._lock:
            last_end, ahead = self._ends.pop(ino, (0, 0))
            if not last_end - SLACK <= offset <= max(last_end, ahead):
                self._ends[ino] = (end, end)
                return None
            if len(self._ends) >= TRACKED:
                del self._ends[next(iter(self._ends))]
            end = max(end, last_end)
            if ahead - end >= WINDOW // 2:
                self._ends[ino] = (end, ahead)
                return None
            self._ends[ino] = (end, end + WINDOW)
            return max(ahead, end), end + WINDOW

    def start(self, block_ids, cached: Callable[[int], bool]) -> None:
        """Decode these blocks in the background (those not cached or already under way)."""
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sessionfs-readahead")
            for block_id in block_ids:
                if block_id not in self._loading and not cached(block_id):
                    self._loading[block_id] = self._pool.submit(self._run, block_id)

    def _run(self, block_id: int) -> None:
        try:
            self._store(block_id, self._load(block_id))
        finally:
            with self._lock:
                self._loading.pop(block_id, None)

    def claim(self, block_id: int) -> bool:
        """Wait for the block if a worker is decoding it; True when it was (it is cached now,
        unless it failed or was too large to keep)."""
        with self._lock:
            fut = self._loading.get(block_id)
        if fut is None:
            return False
        try:
            fut.result()
        except Exception:  # noqa: BLE001 - the reader loads it again and reports the error
            return False
        return True

    def stop(self) -> None:
        """Wait for the blocks under way and start no more."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
