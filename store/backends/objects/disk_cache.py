"""A local disk cache of object ranges: ``DiskCachedObjects`` wraps any ``ObjectStore``.

Reads of a range (``get(name, offset, length)``, what the packer asks for one block) are kept
in a directory, one file an entry, named after its key: ``packs~00000042@1024+65536`` holds
bytes [1024, 1024+65536) of ``packs/00000042``. Objects are immutable, so an entry never goes
stale; ``delete`` drops the object's entries. The cache is bounded in bytes and evicts the
least recently used entries (``plan_eviction``, pure). It survives restarts: the index is
rebuilt from the file names at open, oldest use first by modification time (a hit touches its
file). Writes are crash-safe (a temporary file renamed into place), and every entry starts
with the SHA-256 of its key and bytes, checked on each read: a damaged entry is dropped and
the range fetched again, never served. Thread-safe; the rest of the interface delegates.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from .store import ObjectStore, check_name

log = logging.getLogger("sessionfs.disk_cache")

_ENTRY = re.compile(r"^(.+)@(\d+)\+(\d+)$")
_DIGEST = 32

Key = tuple[str, int, int]


def plan_eviction(lru: Iterable[tuple[Key, int]], used: int, limit: int, incoming: int) -> list[Key]:
    """The entries to evict, oldest first, so that ``incoming`` more bytes fit in ``limit``.

    ``lru`` yields (key, size) from least to most recently used; ``used`` is their total."""
    out = []
    for key, size in lru:
        if used + incoming <= limit:
            break
        out.append(key)
        used -= size
    return out


def _file_name(key: Key) -> str:
    name, offset, length = key
    return f"{name.replace('/', '~')}@{offset}+{length}"


def _key_of(file_name: str) -> Key | None:
    m = _ENTRY.match(file_name)
    if m is None:
        return None
    try:
        return check_name(m.group(1).replace("~", "/")), int(m.group(2)), int(m.group(3))
    except ValueError:
        return None


def _digest(key: Key, data: bytes) -> bytes:
    h = hashlib.sha256(_file_name(key).encode())
    h.update(data)
    return h.digest()


class DiskCachedObjects:
    """``inner`` with its ranged reads cached in ``directory``, at most ``max_bytes`` on disk."""

    def __init__(self, inner: ObjectStore, directory: Path, max_bytes: int):
        self.inner = inner
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.hits = self.misses = self.damaged = self.evicted = 0
        self._lock = threading.Lock()
        self._lru: OrderedDict[Key, int] = OrderedDict()     # key -> bytes on disk, oldest first
        self._used = 0
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        found = []
        for entry in os.scandir(self.directory):
            key = _key_of(entry.name) if entry.is_file(follow_symlinks=False) else None
            if key is None:
                _unlink(Path(entry.path))          # a temporary file of a crashed write, or a stranger
                continue
            st = entry.stat(follow_symlinks=False)
            found.append((st.st_mtime_ns, key, st.st_size))
        for _, key, size in sorted(found):
            self._lru[key] = size
            self._used += size
        self._evict()

    @property
    def used_bytes(self) -> int:
        return self._used

    def statistics(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._lru), "bytes": self._used, "limit": self.max_bytes, "hits": self.hits,
                    "misses": self.misses, "damaged": self.damaged, "evicted": self.evicted}

    # -- reads -----------------------------------------------------------------------------
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if not length:
            return self.inner.get(name, offset, length)
        key = (name, offset, length)
        data = self._cached(key)
        if data is not None:
            return data
        data = self.inner.get(name, offset, length)
        self._store(key, data)
        return data

    def _cached(self, key: Key) -> bytes | None:
        with self._lock:
            if key not in self._lru:
                self.misses += 1
                return None
        path = self.directory / _file_name(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:                  # evicted meanwhile
            with self._lock:
                self.misses += 1
                self._forget(key)
            return None
        data = raw[_DIGEST:]
        if len(raw) != _DIGEST + key[2] or _digest(key, data) != raw[:_DIGEST]:
            log.error("disk cache entry %s is damaged; dropped and read again from the object store", path)
            with self._lock:
                self.damaged += 1
                self.misses += 1
                self._forget(key)
                _unlink(path)
            return None
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
            self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)                         # the use order after a restart
        return data

    def _store(self, key: Key, data: bytes) -> None:
        size = _DIGEST + len(data)
        if size > self.max_bytes:
            return
        final = self.directory / _file_name(key)
        tmp = self.directory / f".tmp-{secrets.token_hex(8)}"
        try:
            with open(tmp, "xb") as f:
                f.write(_digest(key, data))
                f.write(data)
            with self._lock:                       # the index and the directory change together
                os.rename(tmp, final)
                self._forget(key)
                self._lru[key] = size
                self._used += size
                self._evict()
        except OSError as exc:                     # a full or broken cache disk only costs speed
            log.warning("could not write disk cache entry %s: %s", final, exc)
            _unlink(tmp)

    def _forget(self, key: Key) -> None:
        size = self._lru.pop(key, None)
        if size is not None:
            self._used -= size

    def _evict(self) -> None:
        """Under the lock (or at open): drop least recently used entries past the bound.
        Entries are renamed into place and unlinked under the lock, so the index is the
        directory; a read that opened a file before it went still reads it whole."""
        for key in plan_eviction(self._lru.items(), self._used, self.max_bytes, 0):
            self._forget(key)
            self.evicted += 1
            _unlink(self.directory / _file_name(key))

    # -- the rest of the interface ------------------------------------------------------------
    def delete(self, name: str) -> None:
        with self._lock:
            for key in [key for key in self._lru if key[0] == name]:
                self._forget(key)
                _unlink(self.directory / _file_name(key))
        self.inner.delete(name)

    def put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)

    def put_file(self, name: str, path: Path) -> None:
        self.inner.put_file(name, path)

    def size(self, name: str) -> int | None:
        return self.inner.size(name)

    def list(self, prefix: str = "") -> dict[str, int]:
        return self.inner.list(prefix)

    def modified(self, prefix: str = "") -> dict[str, float]:
        return self.inner.modified(prefix)

    def close(self) -> None:
        self.inner.close()


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
