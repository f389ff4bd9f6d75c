"""Object stores: immutable named objects, the interface every pack backend implements.

An object store holds whole objects under names such as ``packs/00000042``
('/'-separated, no empty, ``.`` or ``..`` parts). An object is written once,
whole, with create-only semantics, read by byte range, listed by name prefix
and deleted; it is never changed in place. That is what S3-compatible stores
offer, so the local directory below and a scale-out store are two
implementations of the same ``ObjectStore``.

Errors: reading a missing object raises ``ObjectMissingError`` (an
``IntegrityError``) naming it, a short object an ``IntegrityError``; a put
onto an existing name raises ``ObjectExistsError``; I/O failures (EIO, ENOSPC)
surface as ``OSError`` with that errno.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
from pathlib import Path
from typing import Callable, Hashable, Protocol, runtime_checkable

from store.core.errors import IntegrityError, StoreError

_NAME_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


class ObjectExistsError(StoreError):
    """A create-only put found the name taken: objects are never overwritten."""


class ObjectMissingError(IntegrityError):
    """The named object is not in the store."""


@runtime_checkable
class ObjectStore(Protocol):
    """Immutable named objects. Every method may be called from any thread."""

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name``, durably, or raise ``ObjectExistsError`` if it exists."""

    def put_file(self, name: str, path: Path) -> None:
        """Store the contents of the local file ``path`` as ``name`` (create-only, durable).
        The caller must not change the file afterwards (a local store may share it)."""

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset+length) of ``name`` (to its end when ``length`` is None)."""

    def size(self, name: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""

    def list(self, prefix: str = "") -> dict[str, int]:
        """Name -> size of every object whose name starts with ``prefix``, sorted by name."""

    def modified(self, prefix: str = "") -> dict[str, float]:
        """Name -> when it was put (s since the epoch) of every object whose name starts with
        ``prefix``: gc's grace period for objects no commit names."""

    def delete(self, name: str) -> None:
        """Remove ``name``; deleting a missing object is not an error."""

    def close(self) -> None:
        """Release cached handles."""


def _valid(name: str) -> bool:
    return bool(name) and all(_NAME_PART.match(p) and p not in (".", "..") for p in name.split("/"))


def check_name(name: str) -> str:
    """``name`` if it is a valid object name, else ValueError naming it."""
    if not _valid(name):
        raise ValueError(f"invalid object name {name!r}")
    return name


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FdTable:
    """Read descriptors shared by threads, opened on first use by ``opener(key)``.

    A descriptor dropped while a read is using it is closed when that read ends, so a
    read never runs on a descriptor number the kernel has already handed to another file."""

    def __init__(self, opener: Callable[[Hashable], int]):
        self._opener = opener
        self._lock = threading.Lock()
        self._open: dict[Hashable, list] = {}      # key -> [fd, readers, dropped]

    def pread(self, key: Hashable, length: int, offset: int) -> bytes:
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                entry = self._open[key] = [self._opener(key), 0, False]
            entry[1] += 1
        try:
            return os.pread(entry[0], length, offset)
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[2] and entry[1] == 0:
                    os.close(entry[0])

    def drop(self, key: Hashable) -> None:
        with self._lock:
            entry = self._open.pop(key, None)
            if entry is not None:
                entry[2] = True
                if entry[1] == 0:
                    os.close(entry[0])

    def close(self) -> None:
        for key in list(self._open):
            self.drop(key)


def open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of ``path``, never through a symlink (that reads as corrupt)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ObjectMissingError(f"{what} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"{what} is a symbolic link; not following it") from None
        raise


def pread_exact(fds: FdTable, key: Hashable, offset: int, length: int, what: str) -> bytes:
    data = fds.pread(key, length, offset)
    if len(data) != length:
        raise IntegrityError(f"{what} is truncated: wanted {length} bytes at {offset}, got {len(data)}")
    return data


class LocalObjectStore:
    """An ``ObjectStore`` in a directory: object ``a/b`` is the file ``<root>/a/b<suffix>``.

    The suffix keeps the layout of stores written before this interface existed
    (``packs/00000042.pack``), so they open unchanged. A put writes a temporary file
    (or takes the caller's file), fsyncs it, hard-links it to the final name (an
    existing name refuses the link: create-only), unlinks the temporary name and
    fsyncs the directory. Symlinks are never followed: one planted under an object's
    name is not listed and reads as corrupt."""

    def __init__(self, root: Path, suffix: str = ""):
        self.root = Path(root)
        self.suffix = suffix
        self._reads = FdTable(lambda name: open_regular(self.path(name), f"object {name}"))

    def path(self, name: str) -> Path:
        return self.root / (check_name(name) + self.suffix)

    def put(self, name: str, data: bytes) -> None:
        final = self.path(name)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._link(tmp, final, name)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(final.parent)

    def put_file(self, name: str, path: Path) -> None:
        final = self.path(name)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            self._link(Path(path), final, name)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self.put(name, Path(path).read_bytes())      # another file system: copy it
            return
        fsync_dir(final.parent)

    @staticmethod
    def _link(src: Path, final: Path, name: str) -> None:
        try:
            os.link(src, final, follow_symlinks=False)
        except FileExistsError:
            raise ObjectExistsError(f"object {name} already exists; objects are never overwritten") from None

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if length is None:
            length = (self.size(name) or 0) - offset
        return pread_exact(self._reads, name, offset, length, f"object {name}")

    def size(self, name: str) -> int | None:
        try:
            st = os.lstat(self.path(name))
        except FileNotFoundError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def list(self, prefix: str = "") -> dict[str, int]:
        head, _, _ = prefix.rpartition("/")
        top = self.root / head if head else self.root
        out = {}
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.root)
            for fname in filenames:
                if fname.startswith(".") or not fname.endswith(self.suffix):
                    continue
                relname = fname if rel == "." else f"{rel}/{fname}"
                name = relname[:-len(self.suffix)] if self.suffix else relname
                if not name.startswith(prefix) or not _valid(name):
                    continue
                size = self.size(name)
                if size is not None:
                    out[name] = size
        return dict(sorted(out.items()))

    def modified(self, prefix: str = "") -> dict[str, float]:
        out = {}
        for name in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):
                out[name] = os.stat(self.path(name), follow_symlinks=False).st_mtime
        return out

    def delete(self, name: str) -> None:
        self._reads.drop(name)
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self._reads.close()
