"""The store's writer lock: ``lock`` flock'ed exclusively by the one process that writes,
and ``owner.json`` saying who holds it (pid, mountpoint) for the error another gets."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import orjson

from store.core.errors import LockedError


class StoreLock:
    """Held from ``take`` until ``release`` (the flock also ends with the process)."""

    def __init__(self, root: Path):
        self.root = root
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, owner: dict | None) -> None:
        """Take the lock or raise ``LockedError`` naming the process (and mountpoint) holding it."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                info = orjson.loads((self.root / "owner.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                info = {}
            where = f" (mounted at {info['mountpoint']})" if info.get("mountpoint") else ""
            raise LockedError(f"store {self.root} is in use by process {info.get('pid', '?')}{where}; "
                              "unmount it or stop that process first") from None
        tmp = self.root / "owner.json.tmp"
        tmp.write_bytes(orjson.dumps({"pid": os.getpid(), **(owner or {})}))
        os.replace(tmp, self.root / "owner.json")
        self._fd = fd

    def release(self) -> None:
        """Drop owner.json and the lock (nothing if not held)."""
        if self._fd is not None:
            try:
                (self.root / "owner.json").unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None
