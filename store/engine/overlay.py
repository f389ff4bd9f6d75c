"""Uncommitted writes to one file, kept in a sparse staging file.

An overlay sits on top of the file's lower layer (an older overlay still
waiting for the persistence worker, or the committed chunk list) and records
only what changed:

- ``dirty``: the byte ranges written since the overlay began, stored at the
  same offsets in the sparse staging file;
- ``size``: the file's size now;
- ``floor``: the smallest size the file had since the overlay began. Below
  ``floor`` a byte that is not dirty comes from the lower layer; at or above
  it, it is a zero (the file was truncated and grown again).

``seal()`` happens on every close(2) (FUSE ``flush``) and fsync: it writes a
small marker file next to the staging file, atomically (write + rename). A
sealed overlay is immutable and queued for commit; later writes start a new
overlay on top. Both files live in the page cache, so a closed file survives a
SIGKILL of the daemon: the next open replays every marker whose boot id is
this boot's (after a reboot un-fsynced data may be torn, so it is dropped;
that is the stated power-loss window).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from store.core.intervals import IntervalSet

MARKER_SUFFIX = ".sealed"
DATA_SUFFIX = ".data"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class Overlay:
    __slots__ = ("seq", "ino", "data_path", "fd", "size", "floor", "dirty", "mtime_ns", "ctime_ns",
                 "sealed", "_dir")

    def __init__(self, staging_dir: Path, seq: int, ino: int, base_size: int, *, create: bool = True):
        self._dir = Path(staging_dir)
        self.seq = seq
        self.ino = ino
        self.data_path = self._dir / f"{seq:016d}{DATA_SUFFIX}"
        flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = os.open(self.data_path, flags, 0o600)
        self.size = base_size
        self.floor = base_size
        self.dirty = IntervalSet()
        self.mtime_ns = self.ctime_ns = 0
        self.sealed = False

    @property
    def marker_path(self) -> Path:
        return self._dir / f"{self.seq:016d}{MARKER_SUFFIX}"

    def write(self, offset: int, data: bytes, now_ns: int) -> int:
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(self.fd, view, pos)
            pos += n
            view = view[n:]
        self.dirty.add(offset, offset + len(data))
        self.size = max(self.size, offset + len(data))
        self.mtime_ns = self.ctime_ns = now_ns
        return len(data)

    def truncate(self, size: int, now_ns: int) -> None:
        if size < self.size:
            self.dirty.remove(size, self.size)
            self.floor = min(self.floor, size)
            os.ftruncate(self.fd, size)
        self.size = size
        self.mtime_ns = self.ctime_ns = now_ns

    def read_staged(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        return data + bytes(length - len(data)) if len(data) < length else data

    def seal(self, boot: str) -> None:
        """Make the overlay immutable and replayable after a daemon crash."""
        marker = {"seq": self.seq, "ino": self.ino, "size": self.size, "floor": self.floor,
                  "dirty": list(self.dirty), "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns,
                  "boot_id": boot}
        tmp = self._dir / f"{self.seq:016d}.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(marker))
        os.replace(tmp, self.marker_path)
        self.sealed = True

    def discard(self) -> None:
        """Close and delete the staging files (after commit, or when abandoned)."""
        fd, self.fd = self.fd, -1        # -1 first: a concurrent reader sees it was discarded
        if fd >= 0:
            os.close(fd)
        for path in (self.marker_path, self.data_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @classmethod
    def load(cls, staging_dir: Path, marker: dict) -> "Overlay":
        """Rebuild a sealed overlay from its marker (crash replay)."""
        ov = cls(staging_dir, int(marker["seq"]), int(marker["ino"]), int(marker["floor"]), create=False)
        ov.size = int(marker["size"])
        ov.floor = int(marker["floor"])
        ov.dirty = IntervalSet((int(s), int(e)) for s, e in marker["dirty"])
        ov.mtime_ns = int(marker["mtime_ns"])
        ov.ctime_ns = int(marker["ctime_ns"])
        ov.sealed = True
        return ov
