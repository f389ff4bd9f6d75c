"""Running a mount: start (daemonized or in the foreground), serve, stop cleanly.

``serve`` opens the store (taking its write lock, so a second mount of the
same store fails before touching anything), mounts, and runs pyfuse3's main
loop under trio until the filesystem is unmounted or a SIGINT/SIGTERM/SIGHUP
arrives. On the way out it unmounts, lets the persistence worker commit
everything queued, and releases the store. Kernel cache invalidations for
files changed behind the kernel's back (the session API, the importer) are
sent from a dedicated thread, as pyfuse3 requires.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyfuse3
import trio

from store import Store
from store.errors import StoreError

from .ops import SessionFS

log = logging.getLogger("sessionfs.daemon")

FSTYPE = "fuse.sessionfs"


class MountError(StoreError):
    """The mount could not be started or stopped; the message says why."""


def is_stale(mountpoint: str) -> bool:
    """True when ``mountpoint`` is a FUSE mount whose daemon is gone."""
    try:
        os.statvfs(mountpoint)   # stat() may be answered from the kernel's attribute cache
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounted_here(mountpoint: str) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (the topmost), or None."""
    target = os.path.realpath(mountpoint)
    found = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if _unescape(fields[4]) == target:
                    found = fields[fields.index("-") + 1]
    except OSError:
        return None
    return found


def lazy_unmount(mountpoint: str) -> None:
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        try:
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return
        except FileNotFoundError:
            continue


def check_mountpoint(mountpoint: str) -> None:
    if is_stale(mountpoint):
        log.warning("cleaning up %s: its previous daemon died", mountpoint)
        lazy_unmount(mountpoint)
    p = Path(mountpoint)
    if not p.is_dir():
        raise MountError(f"mountpoint {mountpoint} does not exist or is not a directory")
    kind = mounted_here(mountpoint)
    if kind is not None and kind.startswith("fuse"):
        raise MountError(f"{mountpoint} is already a mountpoint ({kind}); unmount it first")


class Invalidator:
    """Sends kernel cache invalidations from its own thread."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sessionfs-invalidate", daemon=True)
        self._thread.start()

    def __call__(self, inos) -> None:
        for ino in inos:
            self._queue.put(ino)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while (ino := self._queue.get()) is not None:
            try:
                pyfuse3.invalidate_inode(ino)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTCONN, errno.EBADF):
                    log.warning("invalidating inode %d failed: %s", ino, exc)
            except Exception:  # noqa: BLE001 - keep invalidating the rest
                log.exception("invalidating inode %d failed", ino)


def mount_options(store: Path, allow_other: bool, debug: bool) -> set[str]:
    opts = set(pyfuse3.default_options)
    opts |= {f"fsname=sessionfs:{store}", "subtype=sessionfs"}
    if allow_other:
        opts.add("allow_other")
    if debug:
        opts.add("debug")
    return opts


def serve(store_path: str, mountpoint: str, *, cache_bytes: int, allow_other: bool = False,
          debug: bool = False, ready=None) -> None:
    """Mount and serve until unmounted or signalled. ``ready(error_or_None)`` reports startup."""
    mountpoint = os.path.abspath(mountpoint)
    try:
        check_mountpoint(mountpoint)
        store = Store.open(store_path, cache_bytes=cache_bytes, owner={"mountpoint": mountpoint})
    except (StoreError, OSError) as exc:
        if ready:
            ready(str(exc))
        raise
    started = time.time()

    def render_stats() -> dict:
        stats = store.statistics().as_dict()
        return {"pid": os.getpid(), "store": str(Path(store_path).resolve()), "mountpoint": mountpoint,
                "started": started, **stats}

    ops = SessionFS(store, render_stats)
    invalidator = Invalidator()
    store.add_commit_listener(invalidator)
    try:
        pyfuse3.init(ops, mountpoint, mount_options(Path(store_path).resolve(), allow_other, debug))
    except Exception as exc:  # noqa: BLE001 - report any mount failure in words
        invalidator.stop()
        store.close()
        msg = f"cannot mount {mountpoint}: {exc}"
        if ready:
            ready(msg)
        raise MountError(msg) from None
    if ready:
        ready(None)
    log.info("mounted %s at %s (pid %d)", store_path, mountpoint, os.getpid())
    unmounted = False
    try:
        trio.run(_main)
        unmounted = True
    finally:
        pyfuse3.close(unmount=not unmounted)
        invalidator.stop()
        store.close()
        log.info("unmounted %s; every queued write is committed", mountpoint)


async def _main() -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, nursery.cancel_scope)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


async def _watch_signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("signal %s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
            return


def daemonize(run, log_file: Path) -> int:
    """Run ``run(ready)`` in a detached daemon; return 0 once it reports a good start, 1 on error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as r:
            status = r.read().decode(errors="replace")
        os.waitpid(pid, 0)
        if status.startswith("ok"):
            return 0
        print(f"sessionfs: {status.removeprefix('error: ') or 'the daemon exited during start-up'}",
              file=sys.stderr)
        return 1
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    logfd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.close(devnull)
    os.close(logfd)
    _log_to(sys.stderr)

    def ready(error: str | None) -> None:
        os.write(write_fd, b"ok\n" if error is None else f"error: {error}".encode())
        os.close(write_fd)

    code = 0
    try:
        run(ready)
    except BaseException:  # noqa: BLE001 - the daemon's last words go to its log
        log.exception("daemon stopped on an error")
        code = 1
    os._exit(code)


def _log_to(stream) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def daemon_pid(mountpoint: str) -> int | None:
    import orjson
    try:
        return int(orjson.loads(Path(mountpoint, ".sessionfs", "stats.json").read_bytes())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unmount(mountpoint: str, timeout: float = 120.0) -> None:
    """Unmount a sessionfs mount and wait until its daemon has committed everything and exited."""
    mountpoint = os.path.abspath(mountpoint)
    if is_stale(mountpoint):
        lazy_unmount(mountpoint)
        return
    kind = mounted_here(mountpoint)
    if kind != FSTYPE:
        raise MountError(f"{mountpoint} is not a sessionfs mount" + (f" (it is {kind})" if kind else ""))
    pid = daemon_pid(mountpoint)
    result = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True)
    if result.returncode != 0:
        raise MountError(f"cannot unmount {mountpoint}: {result.stderr.strip() or 'fusermount3 failed'}")
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise MountError(f"daemon {pid} did not exit within {timeout:.0f} s after unmount")
