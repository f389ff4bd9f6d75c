"""Fault injection for tests: packs, objects and catalog commits that fail on a schedule.

``FaultyPacks`` wraps a ``Packer`` (over any object store) and makes ``append`` and the
fsync before a commit (``prepare_commit``) raise ``OSError(EIO|ENOSPC)`` on chosen calls;
``append`` faults can be *torn* (a prefix of the block really reaches the open pack
before the error, as a short write on a full disk does) or clean. With ``put`` it wraps
the packer's object store in ``FaultyObjects``, whose ``put``/``put_file`` fail cleanly
(an object store's put is whole or nothing). ``CatalogFaults`` makes catalog write
transactions fail just before COMMIT (the transaction rolls back, as SQLite does on
SQLITE_FULL/SQLITE_IOERR). All count what they injected by kind, so a test can report it::

    packs = FaultyPacks(local_packer(root), append=Schedule(every=3, errno=ENOSPC))
    store = Store.open(root, packs=packs)
    faults = CatalogFaults.install(store, Schedule(calls=[2, 5]))
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import random
import threading
from collections import Counter
from typing import Iterable

from store.core.errors import CatalogError


class Schedule:
    """Which calls fail: every ``every``-th call, the 1-based call numbers in ``calls``, or each
    call with probability ``rate`` (seeded). ``errnos`` cycles through the error numbers used.
    ``enabled`` switches the whole schedule off (faults stop, e.g. space came back)."""

    def __init__(self, *, every: int = 0, calls: Iterable[int] = (), rate: float = 0.0,
                 errno: int | Iterable[int] = _errno.EIO, seed: int = 0, torn: bool = False):
        self.every = every
        self.calls = set(calls)
        self.rate = rate
        self.errnos = [errno] if isinstance(errno, int) else list(errno)
        self.torn = torn
        self.enabled = True
        self.seen = 0
        self.fired = 0
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()

    def next(self) -> int | None:
        """Count a call; the errno to fail it with, or None."""
        with self._lock:
            self.seen += 1
            hit = (self.every and self.seen % self.every == 0) or self.seen in self.calls or (
                self.rate and self._rnd.random() < self.rate)
            if not (self.enabled and hit):
                return None
            code = self.errnos[self.fired % len(self.errnos)]
            self.fired += 1
            return code


class FaultCounts:
    """Injected faults by (operation, errno name)."""

    def __init__(self):
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def add(self, op: str, code: int) -> None:
        with self._lock:
            self.counts[(op, _errno.errorcode.get(code, str(code)))] += 1

    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{op}/{name}={n}" for (op, name), n in sorted(self.counts.items())) or "none"


def _fail(code: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)} (injected fault: {what})")


class FaultyObjects:
    """An object store whose ``put`` and ``put_file`` fail on schedule; the rest delegates."""

    def __init__(self, inner, put: Schedule, counts: FaultCounts):
        self.inner = inner
        self.put_schedule = put
        self.counts = counts

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _fault(self) -> None:
        code = self.put_schedule.next()
        if code is not None:
            self.counts.add("put", code)
            raise _fail(code, "object put")

    def put(self, name: str, data: bytes) -> None:
        self._fault()
        self.inner.put(name, data)

    def put_file(self, name: str, path) -> None:
        self._fault()
        self.inner.put_file(name, path)


class FaultyPacks:
    """A packer whose ``append`` and ``prepare_commit`` (the fsync before a commit) fail on
    schedule, over an object store whose puts fail on schedule; the rest delegates."""

    def __init__(self, inner, *, append: Schedule | None = None, sync: Schedule | None = None,
                 put: Schedule | None = None, counts: FaultCounts | None = None):
        self.inner = inner
        self.append_schedule = append or Schedule()
        self.sync_schedule = sync or Schedule()
        self.put_schedule = put or Schedule()
        self.counts = counts or FaultCounts()
        inner.objects = FaultyObjects(inner.objects, self.put_schedule, self.counts)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def write_position(self):
        return self.inner.write_position

    def append(self, framed: bytes, next_id: int):
        code = self.append_schedule.next()
        if code is not None:
            self.counts.add("append", code)
            if self.append_schedule.torn and len(framed) > 1:
                # A short write: part of the block is in the open pack when the error comes.
                self.inner.append(bytes(framed[:len(framed) // 2]), next_id)
            raise _fail(code, "pack append")
        return self.inner.append(framed, next_id)

    def prepare_commit(self) -> None:
        code = self.sync_schedule.next()
        if code is not None:
            self.counts.add("sync", code)
            raise _fail(code, "pack fsync")
        return self.inner.prepare_commit()


class CatalogFaults:
    """Makes ``store.catalog.write`` transactions fail before COMMIT on schedule (rolled back)."""

    def __init__(self, catalog, schedule: Schedule, counts: FaultCounts | None = None):
        self.catalog = catalog
        self.schedule = schedule
        self.counts = counts or FaultCounts()
        self._original = catalog.write

    @classmethod
    def install(cls, store, schedule: Schedule, counts: FaultCounts | None = None) -> "CatalogFaults":
        hook = cls(store.catalog, schedule, counts)
        store.catalog.write = hook.write       # instance attribute: only this open store
        return hook

    def uninstall(self) -> None:
        if self.catalog.__dict__.get("write") == self.write:
            del self.catalog.write

    @contextlib.contextmanager
    def write(self, durable: bool = False):
        with self._original(durable) as db:
            yield db
            code = self.schedule.next()
            if code is not None:
                self.counts.add("catalog-commit", code)
                # As the catalog reports a commit that failed (SQLITE_FULL, SQLITE_IOERR).
                raise CatalogError(f"catalog commit failed: {os.strerror(code)} (injected fault)", code)
