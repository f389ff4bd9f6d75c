"""Pack files: the object backend. Append-only files of framed blocks.

This class is the whole interface the rest of the store uses to reach stored
bytes (``read``, ``append``, ``sync``, ``truncate``, ``delete``, ``list_ids``),
so a second backend (S3-compatible object storage) or a fault-injecting
wrapper replaces it without touching the catalog or the mount.

Only the store's persistence worker appends; any thread reads. A pack is
written up to ``target_size`` and then sealed; the next block goes to a new
pack. Durability: ``sync`` fsyncs every pack appended to since the last sync
(and the directory when a pack was created) and must return before the
catalog transaction that points at the new blocks commits.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

from store.core.errors import IntegrityError

PACK_TARGET_SIZE = 64 * 1024 * 1024
_PACK_NAME = re.compile(r"^(\d{8,})\.pack$")


class PackFiles:
    def __init__(self, directory: Path, target_size: int = PACK_TARGET_SIZE):
        self.dir = Path(directory)
        self.target_size = target_size
        self._read_fds: dict[int, int] = {}
        self._fd_lock = threading.Lock()
        self._write_id: int | None = None
        self._write_fd: int | None = None
        self._write_size = 0
        self._unsynced: set[int] = set()
        self._dir_dirty = False

    def path(self, pack_id: int) -> Path:
        return self.dir / f"{pack_id:08d}.pack"

    def list_ids(self) -> list[int]:
        """Pack ids present on disk."""
        ids = []
        for name in os.listdir(self.dir):
            m = _PACK_NAME.match(name)
            if m:
                ids.append(int(m.group(1)))
        return sorted(ids)

    def file_size(self, pack_id: int) -> int | None:
        """Size of the pack file (a symlink is never followed: it reads as missing)."""
        try:
            st = os.lstat(self.path(pack_id))
        except FileNotFoundError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    # -- reading ---------------------------------------------------------
    def _read_fd(self, pack_id: int) -> int:
        with self._fd_lock:
            fd = self._read_fds.get(pack_id)
            if fd is None:
                try:
                    fd = os.open(self.path(pack_id), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                except FileNotFoundError:
                    raise IntegrityError(f"pack {pack_id:08d} is missing") from None
                self._read_fds[pack_id] = fd
            return fd

    def read(self, pack_id: int, offset: int, length: int) -> bytes:
        data = os.pread(self._read_fd(pack_id), length, offset)
        if len(data) != length:
            raise IntegrityError(
                f"pack {pack_id:08d} is truncated: wanted {length} bytes at {offset}, got {len(data)}")
        return data

    # -- writing (persistence worker only) -------------------------------
    def resume(self, pack_id: int | None, committed_size: int) -> None:
        """Continue appending to ``pack_id`` (unsealed) at its committed size."""
        self._close_writer()
        if pack_id is not None and committed_size < self.target_size:
            fd = os.open(self.path(pack_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            os.ftruncate(fd, committed_size)
            self._write_id, self._write_fd, self._write_size = pack_id, fd, committed_size

    def append(self, framed: bytes, next_id: int) -> tuple[int, int, bool]:
        """Append a framed block; returns (pack_id, offset, created_new_pack).

        ``next_id`` is the id to use when a new pack has to be started.
        """
        created = False
        if self._write_fd is None or self._write_size + len(framed) > self.target_size and self._write_size > 0:
            self._close_writer()
            fd = os.open(self.path(next_id), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600)
            self._write_id, self._write_fd, self._write_size = next_id, fd, 0
            self._dir_dirty = True
            created = True
        offset = self._write_size
        view = memoryview(framed)
        while view:
            n = os.pwrite(self._write_fd, view, self._write_size)
            self._write_size += n
            view = view[n:]
        self._unsynced.add(self._write_id)
        return self._write_id, offset, created

    @property
    def write_position(self) -> tuple[int | None, int]:
        return self._write_id, self._write_size

    def rollback(self, pack_id: int, size: int) -> None:
        """Forget appends past ``size`` after a failed batch (the catalog never saw them)."""
        if self._write_id == pack_id and self._write_fd is not None:
            os.ftruncate(self._write_fd, size)
            self._write_size = size

    def sync(self) -> None:
        for pack_id in sorted(self._unsynced):
            if pack_id == self._write_id and self._write_fd is not None:
                os.fsync(self._write_fd)
            else:
                fd = os.open(self.path(pack_id), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._unsynced.clear()
        if self._dir_dirty:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dir_dirty = False

    def truncate(self, pack_id: int, size: int) -> None:
        fd = os.open(self.path(pack_id), os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def delete(self, pack_id: int) -> None:
        with self._fd_lock:
            fd = self._read_fds.pop(pack_id, None)
        if fd is not None:
            os.close(fd)
        if pack_id == self._write_id:
            self._close_writer()
        try:
            os.unlink(self.path(pack_id))
        except FileNotFoundError:
            pass
        self._dir_dirty = True

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            if self._write_id in self._unsynced:
                os.fsync(self._write_fd)
                self._unsynced.discard(self._write_id)
            os.close(self._write_fd)
        self._write_id = self._write_fd = None
        self._write_size = 0

    def close(self) -> None:
        self._close_writer()
        with self._fd_lock:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
