"""Mounting real sessionfs filesystems in tests: the daemon runs as its own process.

``Mount`` starts ``sessionfs mount`` (daemonized, exactly as a user would),
knows the daemon's pid, and always cleans up: ``sessionfs umount``, then a
lazy ``fusermount3 -u -z``, then SIGKILL of the daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

FUSE_AVAILABLE = os.path.exists("/dev/fuse") and bool(
    subprocess.run(["sh", "-c", "command -v fusermount3"], capture_output=True).stdout)


def sessionfs(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess."""
    result = subprocess.run([sys.executable, "-m", "store.cli", *args], capture_output=True, text=True,
                            timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"sessionfs {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def proc_status_kb(pid: int, key: str) -> int:
    """A memory field of /proc/<pid>/status in KiB: ``VmRSS`` (now) or ``VmHWM`` (the peak since
    the process started, so no allocation between two samples escapes it)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"no {key} in /proc/{pid}/status")


def process_alive(pid: int) -> bool:
    """True while any thread of ``pid`` runs (a zombie has exited; after SIGKILL the leader can be a
    zombie while other threads still exit and hold the process's files, /dev/fuse and the store lock)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rsplit(") ", 1)[1][0] not in "ZX":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            continue
    return False


class Mount:
    def __init__(self, store: Path, mountpoint: Path, *extra: str):
        self.store = Path(store)
        self.path = Path(mountpoint)
        self.extra = extra
        self.pid: int | None = None
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def sessions(self) -> Path:
        return self.path / "sessions"

    def start(self) -> "Mount":
        sessionfs("mount", str(self.store), str(self.path), *self.extra)
        self.pid = self.stats()["pid"]
        return self

    def stats(self) -> dict:
        return orjson.loads((self.path / ".sessionfs" / "stats.json").read_bytes())

    def umount(self) -> None:
        sessionfs("umount", str(self.path))
        self.pid = None

    def kill9(self) -> None:
        """SIGKILL the daemon, as a crash would, and detach the dead mount."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.pid = None
        subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)

    def remount(self) -> "Mount":
        self.umount()
        return self.start()

    def cleanup(self) -> None:
        """Unmount however possible; never raises."""
        if self.pid is not None or _is_mounted(self.path):
            try:
                self.umount()
            except Exception:  # noqa: BLE001 - fall through to harder methods
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
                if self.pid is not None and process_alive(self.pid):
                    os.kill(self.pid, signal.SIGKILL)
        self.pid = None


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


@contextlib.contextmanager
def served(store, mountpoint: Path):
    """Serve ``store`` at ``mountpoint`` from a thread of this process; always unmounts."""
    from fusefs.daemon import serve_store

    started = threading.Event()
    failure: list = []

    def ready(error):
        if error:
            failure.append(error)
        started.set()

    def run():
        try:
            serve_store(store, str(mountpoint), signals=False, ready=ready)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failure.append(exc)
            started.set()

    mountpoint.mkdir(exist_ok=True)
    thread = threading.Thread(target=run, name="fuse-main", daemon=True)
    thread.start()
    assert started.wait(60), "the in-process mount did not start"
    assert not failure, failure
    try:
        yield mountpoint
    finally:
        r = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        thread.join(60)
        assert not thread.is_alive(), "the in-process FUSE loop did not stop after unmount"
