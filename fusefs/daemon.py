"""Running a mount: start (daemonized or in the foreground), serve, stop cleanly.

``preflight`` refuses the common mistakes (store in use, mountpoint busy or
missing) before anything is created or forked, and cleans up the mountpoint of a
daemon that died. ``serve`` opens the store (taking its write lock, so a second
mount of the same store fails before touching anything) and hands it to
``serve_store``, which mounts and runs pyfuse3's main loop under trio until the
filesystem is unmounted or a SIGINT/SIGTERM/SIGHUP arrives (then it unmounts
itself). On the way out ``serve`` lets the persistence worker commit everything
queued and releases the store. ``serve_store`` also serves a store that is
already open (tests run it in a thread beside the session API). Kernel cache
invalidations for files changed behind the kernel's back (the session API, the
importer) are sent from a dedicated thread, as pyfuse3 requires.
"""

from __future__ import annotations

import errno
import functools
import fcntl
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

import orjson
import pyfuse3
import trio

from store import Store
from store.core.errors import LockedError, StoreError
from store.engine.memory import MAX_TASKS, MemoryPlan, tune_malloc
from store.services.serving import Serving

from .ops import SessionFS

log = logging.getLogger("sessionfs.daemon")

FSTYPE = "fuse.sessionfs"
IDLE_TASKS = 4          # request tasks kept waiting on /dev/fuse (see _main)


class MountError(StoreError):
    """The mount could not be started or stopped; the message says why."""


def is_stale(mountpoint: str) -> bool:
    """True when ``mountpoint`` is a FUSE mount whose connection to its daemon has ended.

    The kernel ends a connection when the daemon's last /dev/fuse descriptor closes (the
    daemon died) or when it is aborted (/sys/fs/fuse/connections/N/abort). Requests that
    were waiting for an answer then fail with ECONNABORTED; every later request fails
    with ENOTCONN, whichever way the connection ended. statfs is always a new request
    (stat() may be answered from the kernel's attribute cache), but it may have been
    waiting already when the connection ended, so both mean a dead mount."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def clean_up_stale(mountpoint: str, timeout: float = 120.0) -> None:
    """Detach a dead mount and wait until its daemon (alive for a moment after an abort,
    still committing what was queued and holding the store) has exited."""
    pid = daemon_pid(mountpoint)
    lazy_unmount(mountpoint)
    if pid is not None and _holds_fuse_device(pid):
        _wait_exit(pid, timeout, "after its connection ended")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_entry(mountpoint: str) -> tuple[str, str] | None:
    """(filesystem type, source) of the topmost mount at ``mountpoint``, or None."""
    target = os.path.realpath(mountpoint)
    found = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if _unescape(fields[4]) == target:
                    sep = fields.index("-")
                    found = (fields[sep + 1], _unescape(fields[sep + 2]))
    except (OSError, IndexError, ValueError):
        return None
    return found


def mounted_here(mountpoint: str) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (the topmost), or None."""
    entry = _mount_entry(mountpoint)
    return entry[0] if entry else None


def lazy_unmount(mountpoint: str) -> None:
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        try:
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return
        except FileNotFoundError:
            continue


def check_mountpoint(mountpoint: str) -> None:
    if is_stale(mountpoint):
        log.warning("cleaning up %s: its previous daemon died or its connection was aborted", mountpoint)
        clean_up_stale(mountpoint)
    p = Path(mountpoint)
    if not p.is_dir():
        raise MountError(f"mountpoint {mountpoint} does not exist or is not a directory")
    kind = mounted_here(mountpoint)
    if kind is not None and kind.startswith("fuse"):
        raise MountError(f"{mountpoint} is already a mountpoint ({kind}); unmount it first")


class Invalidator:
    """Drops what the kernel caches about files changed behind its back (session API, importer).

    A store commit listener (``inodes``: pages and attributes) and entry listener
    (``entries``: names created or removed, so no positive or negative entry the kernel
    cached outlives them). pyfuse3 forbids invalidating from a request handler, so
    the calls are made by a thread of its own; the persistence worker hands them over and
    waits (bounded) until they are done, so once ``Store.settle()`` or ``flush()`` returns
    the mount shows the new state.
    """

    WAIT = 5.0      # seconds the persistence worker waits for one batch's invalidations

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sessionfs-invalidate", daemon=True)
        self._thread.start()

    def inodes(self, inos) -> None:
        self._submit([(pyfuse3.invalidate_inode, (ino,)) for ino in inos])

    __call__ = inodes

    def entries(self, entries) -> None:
        self._submit([(pyfuse3.invalidate_entry, (parent, name)) for parent, name in entries])

    def remote(self, store: Store, changes) -> None:
        """Another mount committed ``changes`` (None: some may have been missed): drop what the
        kernel caches of them, names and inodes; after a miss, every inode the kernel holds
        (names it caches then expire within the shared entry timeout)."""
        if changes is None or changes.everything:
            inos = store.pinned_inodes()
        else:
            inos = changes.inodes | changes.contents
        self._submit([*((pyfuse3.invalidate_entry, (parent, name)) for parent, name in
                        ([] if changes is None else changes.entries)),
                      *((pyfuse3.invalidate_inode, (ino,)) for ino in inos)])

    def _submit(self, calls: list) -> None:
        done = threading.Event()
        with self._lock:
            if self._stopped:       # unmounted: nothing is cached any more (the store may live on)
                return
            self._queue.put((calls, done))
        if not done.wait(self.WAIT):
            log.warning("kernel cache invalidation is slow; not waiting for it any longer")

    def stop(self) -> None:
        """Finish what was handed over; call before the FUSE session is closed."""
        with self._lock:
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            calls, done = work
            for fn, args in calls:
                try:
                    fn(*args)
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.ENOTCONN, errno.EBADF):
                        log.warning("%s%r failed: %s", fn.__name__, args, exc)
                except Exception:  # noqa: BLE001 - keep invalidating the rest
                    log.exception("%s%r failed", fn.__name__, args)
            done.set()


def mount_options(store: Path, allow_other: bool, debug: bool) -> set[str]:
    """FUSE options. ``noatime``: with relatime every read would invalidate the kernel's
    cached attributes and cost a GETATTR round trip on the next stat."""
    opts = set(pyfuse3.default_options)
    opts |= {f"fsname=sessionfs:{store}", "subtype=sessionfs", "noatime"}
    if allow_other:
        opts.add("allow_other")
    if debug:
        opts.add("debug")
    return opts


def preflight(store_path: str, mountpoint: str) -> None:
    """Refuse a mount that cannot work before anything is created, forked or logged.

    Cleans up a stale mountpoint left by a dead daemon; raises ``MountError`` when the
    mountpoint is unusable and ``LockedError`` when another process holds the store.
    ``serve`` checks again (the state may change in between); this only makes the common
    errors immediate and side-effect free.
    """
    check_mountpoint(os.path.abspath(mountpoint))
    lock = Path(store_path) / "lock"
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            info = orjson.loads((Path(store_path) / "owner.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            info = {}
        where = f" (mounted at {info['mountpoint']})" if info.get("mountpoint") else ""
        raise LockedError(f"store {store_path} is in use by process {info.get('pid', '?')}{where}; "
                          "unmount it or stop that process first") from None
    finally:
        os.close(fd)


def serve(store_path: str, mountpoint: str, *, memory: MemoryPlan, allow_other: bool = False,
          debug: bool = False, ready=None, store_options: dict | None = None, webdav=None) -> None:
    """Open the store, mount and serve until unmounted or signalled; then commit and close.

    ``memory`` divides the daemon's memory limit (``store.engine.memory.plan``); ``store_options``
    go to ``Store.open`` (background compression and gc settings); ``webdav``
    (``webdav.server.WebDAVOptions``) also serves the store over WebDAV from this process.

    ``ready(error_or_None)`` reports startup."""
    mountpoint = os.path.abspath(mountpoint)
    tune_malloc()
    try:
        check_mountpoint(mountpoint)
        store = Store.open(store_path, memory=memory, owner={"mountpoint": mountpoint}, **(store_options or {}))
    except (StoreError, OSError) as exc:
        if ready:
            ready(str(exc))
        raise
    try:
        serve_store(store, mountpoint, allow_other=allow_other, debug=debug, ready=ready, webdav=webdav)
    finally:
        store.close()
    log.info("unmounted %s; every queued write is committed", mountpoint)


def serve_store(store: Store, mountpoint: str, *, allow_other: bool = False, debug: bool = False,
                ready=None, signals: bool = True, webdav=None) -> None:
    """Mount an already open store at ``mountpoint`` and serve it until it is unmounted.

    The caller opened the store and closes it afterwards. With ``signals`` (main thread
    only) SIGINT/SIGTERM/SIGHUP unmount; without, this may run in any thread (tests
    serve an in-process store this way and stop it with ``fusermount3 -u``). One mount
    per process: pyfuse3 keeps global state. ``webdav`` (``webdav.server.WebDAVOptions``): serve
    the same store over WebDAV too, on threads of this process (a store has one writer).
    """
    mountpoint = os.path.abspath(mountpoint)
    serving = Serving(store, mountpoint=mountpoint)
    ops = SessionFS(store, serving)
    web = _webdav_server(store, serving, webdav, ready)
    invalidator = Invalidator()
    store.add_commit_listener(invalidator.inodes)
    store.add_entry_listener(invalidator.entries)
    store.add_remote_listener(functools.partial(invalidator.remote, store))
    try:
        pyfuse3.init(ops, mountpoint, mount_options(store.root.resolve(), allow_other, debug))
    except Exception as exc:  # noqa: BLE001 - report any mount failure in words
        invalidator.stop()
        if web is not None:
            web.stop()
        msg = f"cannot mount {mountpoint}: {exc}"
        if ready:
            ready(msg)
        raise MountError(msg) from None
    if ready:
        ready(None)
    log.info("mounted %s at %s (pid %d)", store.root, mountpoint, os.getpid())
    serving.start()                     # import/ drops migrate, sessions' metadata is warmed, in the background
    max_tasks = store.memory.max_tasks if store.memory is not None else MAX_TASKS
    try:
        trio.run(_main, signals, max_tasks)
    except BaseException:
        _stop_helpers(serving, invalidator, web)
        pyfuse3.close(unmount=False)    # after a failure pyfuse3 advises not to unmount: stale until cleaned up
        raise
    _stop_helpers(serving, invalidator, web)   # before the session goes: no invalidation may reach it
    pyfuse3.close(unmount=True)         # after fusermount -u a no-op; after a signal this unmounts


def _webdav_server(store: Store, serving: Serving, options, ready):
    """Start the WebDAV server of ``mount --webdav`` (None without options); a start-up
    failure (the address is taken...) is reported like a mount failure."""
    if options is None:
        return None
    from webdav.server import WebDAVServer     # only with --webdav: the webdav extra may be absent
    try:
        server = WebDAVServer(store, serving, options)
        server.start()
    except OSError as exc:
        msg = f"cannot serve WebDAV on {options.host}:{options.port}: {exc}"
        if ready:
            ready(msg)
        raise MountError(msg) from None
    serving.where["webdav"] = server.url
    return server


def _stop_helpers(serving: Serving, invalidator: Invalidator, web) -> None:
    if web is not None:
        web.stop()
    serving.stop()
    invalidator.stop()


async def _main(signals: bool = True, max_tasks: int = MAX_TASKS) -> None:
    async with trio.open_nursery() as nursery:
        if signals:
            nursery.start_soon(_watch_signals, nursery.cancel_scope)
        # Idle request tasks kept waiting on /dev/fuse. With pyfuse3's default of 1, every
        # request of a sequential client spawned a task and ended another (the task that took
        # a request finds no reader left, starts one, then finds two idle and exits).
        await pyfuse3.main(min_tasks=min(IDLE_TASKS, max_tasks), max_tasks=max_tasks)
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
    except (StoreError, OSError) as exc:
        log.error("daemon stopped: %s", exc)       # already reported in words, no traceback
        code = 1
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


def _mount_source(mountpoint: str) -> str | None:
    """The source field of the topmost mount at ``mountpoint`` ("sessionfs:<store>" for ours)."""
    entry = _mount_entry(mountpoint)
    return entry[1] if entry else None


def daemon_pid(mountpoint: str) -> int | None:
    """The pid of the daemon serving ``mountpoint``: from its store's owner.json (cheap), else
    from the mount's stats.json (which computes the store's statistics)."""
    source = _mount_source(mountpoint) or ""
    if source.startswith("sessionfs:"):
        try:
            owner = orjson.loads(Path(source.removeprefix("sessionfs:"), "owner.json").read_bytes())
            if os.path.realpath(owner.get("mountpoint", "")) == os.path.realpath(mountpoint):
                return int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        return int(orjson.loads(Path(mountpoint, ".sessionfs", "stats.json").read_bytes())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _running(pid: int) -> bool:
    """True while any thread of process ``pid`` runs.

    An exited process that init has not reaped yet (a zombie) counts as exited. The
    leader alone is not enough: after a kill it can be a zombie while other threads
    are still exiting and still hold the process's files (/dev/fuse, the store lock).
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                if f.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            continue
    return False


def unmount(mountpoint: str, timeout: float = 120.0) -> None:
    """Unmount a sessionfs mount and wait until its daemon has committed everything and exited."""
    mountpoint = os.path.abspath(mountpoint)
    if is_stale(mountpoint):
        clean_up_stale(mountpoint, timeout)
        return
    kind = mounted_here(mountpoint)
    if kind != FSTYPE:
        raise MountError(f"{mountpoint} is not a sessionfs mount" + (f" (it is {kind})" if kind else ""))
    pid = daemon_pid(mountpoint)
    result = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True)
    if result.returncode != 0:
        raise MountError(f"cannot unmount {mountpoint}: {result.stderr.strip() or 'fusermount3 failed'}")
    if pid is not None:
        _wait_exit(pid, timeout, "after unmount")


def _holds_fuse_device(pid: int) -> bool:
    """True when process ``pid`` has /dev/fuse open (a daemon, not a process that reused its pid)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse":
                return True
        except OSError:
            continue
    return False


def _wait_exit(pid: int, timeout: float, when: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.02)
    raise MountError(f"daemon {pid} did not exit within {timeout:.0f} s {when}")
