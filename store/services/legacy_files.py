"""Reading legacy session files and attachments, read-only (``O_NOATIME`` where allowed):
the I/O edge of ``store.core.legacy``, which checks and prepares what is read here."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from store.core.legacy import MiB, LegacyError, Limits, Prepared, attachment_index, prepare_bytes


_NOATIME = getattr(os, "O_NOATIME", 0)


def open_readonly(path: str | os.PathLike) -> int:
    """An fd for reading ``path`` that leaves its atime alone where the kernel allows it."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    if _NOATIME:
        try:
            return os.open(path, flags | _NOATIME)
        except PermissionError:      # O_NOATIME needs ownership; fall back to a plain read
            pass
    return os.open(path, flags)


def read_file(path: str | os.PathLike, max_bytes: int, what: str = "file") -> tuple[bytes, os.stat_result]:
    """The bytes and stat of a regular file of at most ``max_bytes``; LegacyError("read") otherwise."""
    try:
        fd = open_readonly(path)
    except OSError as exc:
        raise LegacyError("read", f"cannot open the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LegacyError("read", f"the {what} is not a regular file")
        if st.st_size > max_bytes:
            raise LegacyError("read", f"the {what} is {st.st_size:,} bytes, over the bound of {max_bytes:,}",
                              size=st.st_size)
        chunks, total = [], 0
        while True:
            piece = os.read(fd, min(8 * MiB, max_bytes + 1 - total))
            if not piece:
                break
            chunks.append(piece)
            total += len(piece)
            if total > max_bytes:
                raise LegacyError("read", f"the {what} grew past the bound of {max_bytes:,} bytes while read")
        return b"".join(chunks), st
    except OSError as exc:
        raise LegacyError("read", f"cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def hash_file(path: str | os.PathLike) -> tuple[str, int]:
    """(SHA-256 hex, size) of a file, streamed; OSError when it cannot be read."""
    h = hashlib.sha256()
    size = 0
    fd = open_readonly(path)
    try:
        while piece := os.read(fd, 8 * MiB):
            h.update(piece)
            size += len(piece)
    finally:
        os.close(fd)
    return h.hexdigest(), size


def worker_init(importer_pid: int | None = None) -> None:
    """Initializer of preparing worker processes: Ctrl-C is the importer's to handle, and a
    worker must not outlive a killed importer (SIGKILL leaves pool workers blocked forever):
    it gets SIGKILL when its parent dies (Linux prctl), and polls the importer's pid."""
    import signal
    import threading
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if importer_pid is None:
        return

    def watch() -> None:
        import time
        while True:
            time.sleep(0.5)
            try:
                os.kill(importer_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="importer-watch", daemon=True).start()


def prepare_file(path: str, limits: Limits = Limits(), check_name: bool = True) -> Prepared:
    """Read, check and split one legacy session file (see the module docstring)."""
    data, st = read_file(path, limits.max_file_bytes, "session file")
    expected = None
    if check_name:
        name = os.path.basename(path)
        expected = name[:-len(".json")] if name.endswith(".json") else name
    return prepare_bytes(data, source=path, mtime_ns=st.st_mtime_ns, expected_id=expected, limits=limits)


def scan_attachments(directory: Path) -> dict[str, list[str]]:
    """``attachment_index`` of a directory's regular files; {} when it does not exist."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    return attachment_index(e.name for e in entries if e.is_file())
