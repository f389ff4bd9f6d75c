"""The mount under SIGKILL and signals: what was closed or fsynced through it survives.

A separate writer process works in ``sessions/w/`` on a daemonized mount: in-place
rewrites (O_TRUNC, several write(2)s, close), atomic replacements (temp file +
rename), new files closed or fsynced, unlinks. Every file's content is
self-checking (a header with its name, version, length and the SHA-256 of its body).
The writer reports each step to a log on the plain disk, one write(2) per line,
after the call returned: ``O`` (about to write this version), ``C`` (closed),
``F`` (fsynced), ``U`` (unlinked). The test SIGKILLs the daemon (after a random
delay, or right after a close or an fsync was reported), mounts again and checks,
through the mount:

- a file whose last step was C or F is present and exactly that version;
- a file being rewritten when the daemon died is its last closed version, the
  new version whole, or (if it was being written in place or created) empty:
  never torn, never mixed;
- an unlinked file is gone.

Finally it unmounts, opens the store and checks reference counts, reads every
file in full (each chunk is verified against its hash: ``IntegrityError``
otherwise), and runs the store's own check, ``sessionfs verify --data``. Also here: a killed daemon or an aborted connection leaves a dead mountpoint
(ENOTCONN; ECONNABORTED for requests waiting when it ended) that the next
``sessionfs mount`` or ``sessionfs umount`` cleans up, and SIGTERM/SIGINT
unmount cleanly with everything committed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from checks import assert_catalog_consistent
from mounting import FUSE_AVAILABLE, Mount, process_alive, sessionfs
from fusefs.daemon import is_stale, mounted_here
from store import Store
from store.backends.catalog.sqlite.view import sql

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

ROUNDS = 6

WRITER = r'''
import errno, hashlib, os, random, sys, time

workdir, log_path, round_no, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
POOL = random.Random(7).randbytes(1 << 21)     # shared by all rounds: some chunks dedup
SIZES = (0, 120, 4_000, 65_000, 200_000, 700_000)
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def say(*fields):
    os.write(log, (" ".join(str(f) for f in fields) + "\n").encode())

def content(name, version):
    size = rnd.choice(SIZES)
    start = rnd.randrange(len(POOL) - size)
    body = POOL[start:start + size]
    head = b"SFS %s %d %d %s\n" % (name.encode(), version, size, hashlib.sha256(body).hexdigest().encode())
    return head + body

def write_all(fd, data):
    view = memoryview(data)
    while view:
        step = rnd.choice((4096, 50_000, 131_072, 400_000))
        n = os.write(fd, view[:step])
        view = view[n:]

os.chdir(workdir)      # relative paths: after the daemon dies they fail, never touch the disk below
version = round_no * 1_000_000
created = []
say("S", round_no)
try:
    for k in range(100_000):
        version += 1
        op = rnd.choices(("inplace", "replace", "new", "fsync", "unlink"), (35, 25, 20, 15, 5))[0]
        if op == "inplace":
            name = "rw-%d" % rnd.randrange(6)
        elif op == "replace":
            name = "rp-%d" % rnd.randrange(4)
        elif op in ("new", "fsync"):
            name = "%s-%d-%d" % ("n" if op == "new" else "s", round_no, k)
        else:
            if not created:
                continue
            name = created.pop(rnd.randrange(len(created)))
            os.unlink(name)
            say("U", name)
            continue
        data = content(name, version)
        sha = hashlib.sha256(data).hexdigest()
        say("O", name, version, sha, op)
        if op == "replace":
            tmp = ".tmp-" + name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            write_all(fd, data)
            os.close(fd)
            os.rename(tmp, name)
            say("C", name, version, sha)
        else:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            write_all(fd, data)
            if op == "fsync":
                os.fsync(fd)
                say("F", name, version, sha)
                os.close(fd)
            else:
                os.close(fd)
                say("C", name, version, sha)
            if op == "new":
                created.append(name)
except OSError as exc:
    say("X", exc.errno)
    sys.exit(0)
say("E")
'''


# ---------------------------------------------------------------- helpers
def read_log(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [ln.decode().split() for ln in lines[:-1]]       # the last piece has no newline: ignore it


def expectations(events: list[list[str]]) -> dict[str, dict]:
    """name -> what the log allows: the last completed sha, the in-progress sha and op, or unlinked."""
    state: dict[str, dict] = {}
    for ev in events:
        kind = ev[0]
        if kind == "O":
            st = state.setdefault(ev[1], {"done": None})
            st.update(pending=ev[3], op=ev[4], unlinked=False)
        elif kind in ("C", "F"):
            st = state[ev[1]]
            assert st.get("pending") == ev[3]
            st.update(done=ev[3], pending=None)
        elif kind == "U":
            state[ev[1]].update(unlinked=True, pending=None)
    return state


def parse(name: str, data: bytes) -> None:
    """Assert ``data`` is one whole self-consistent version of ``name``."""
    head, sep, body = data.partition(b"\n")
    assert sep, f"{name}: {len(data)} bytes without a header line (torn)"
    magic, hname, version, size, digest = head.split(b" ")
    assert magic == b"SFS" and hname.decode() == name, f"{name}: holds {hname!r} (mixed)"
    assert len(body) == int(size), f"{name}: body of {len(body)} bytes, header says {int(size)} (torn)"
    assert hashlib.sha256(body).hexdigest().encode() == digest, f"{name}: body fails its checksum (torn or mixed)"


def check_dir(workdir: Path, events: list[list[str]]) -> dict[str, bytes]:
    """Check the writer's directory against its log; returns name -> content of what is there."""
    state = expectations(events)
    present = {p.name: p.read_bytes() for p in workdir.iterdir()}
    for name, data in present.items():
        if name.startswith(".tmp-"):
            continue                  # a replacement never renamed: anything goes
        assert name in state, f"{name}: a file the writer never wrote"
        if data:
            parse(name, data)
    for name, st in state.items():
        data = present.get(name)
        sha = hashlib.sha256(data).hexdigest() if data is not None else None
        if st.get("unlinked"):
            assert data is None, f"{name}: unlinked, but present after the crash"
        elif st.get("pending") is None:
            assert data is not None, f"{name}: closed/fsynced, but missing after the crash"
            assert sha == st["done"], f"{name}: closed/fsynced version lost or damaged after the crash"
        else:
            allowed = {st["done"], st["pending"]}
            if st["op"] != "replace":
                allowed.add(hashlib.sha256(b"").hexdigest())     # truncated or created, not yet closed
            if st["done"] is None:
                allowed.add(None)                                  # never closed: may not exist
            assert sha in allowed, (f"{name}: after the crash it is neither the closed version nor the one being "
                                    f"written ({len(data or b'')} bytes)")
    return present


def wait_dead(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.01)


def kill_daemon(mount: Mount) -> None:
    """SIGKILL the daemon and leave its dead mountpoint as it is (ENOTCONN)."""
    pid = mount.pid
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    mount.pid = None


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def check_store(path: Path, expected: dict[str, bytes]) -> None:
    """Reference counts agree, every file reads in full (hash-verified), and equals what the mount showed."""
    with Store.open(path) as store:
        assert os.listdir(store.root / "staging") == []
        assert_catalog_consistent(store)
        db = store.catalog.reader()
        for ino, size in sql(db).execute("SELECT id, size FROM inodes WHERE mode & 61440 = 32768").fetchall():
            assert len(store.read(ino, 0, size)) == size          # IntegrityError on a bad chunk
        for name, data in expected.items():
            assert store.read_path(f"sessions/w/{name}") == data, name


# ---------------------------------------------------------------- tests
def test_kill9_during_a_writer_loop_loses_nothing_closed_or_fsynced(mount: Mount, tmp_path):
    workdir = mount.sessions / "w"
    workdir.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    log_path = tmp_path / "writer.log"
    rnd = random.Random(20240917)
    triggers = ["time", "close", "fsync", "time", "close", "fsync", "time", "time"][:ROUNDS]
    present: dict[str, bytes] = {}
    seen = 0
    for round_no, trigger in enumerate(triggers):
        before = len(read_log(log_path))
        writer = subprocess.Popen([sys.executable, str(script), str(workdir), str(log_path), str(round_no),
                                   str(rnd.randrange(1 << 30))], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            # let it get going, then choose the moment
            wait_for(lambda: len(read_log(log_path)) >= before + 7 or writer.poll() is not None, 60, "the writer")
            if trigger == "time":
                time.sleep(rnd.uniform(0.05, 0.8))
            else:
                mark = "C" if trigger == "close" else "F"
                start = len(read_log(log_path))
                wait_for(lambda: any(ev[0] == mark for ev in read_log(log_path)[start:])
                         or writer.poll() is not None, 60, f"a {mark} event")
            assert writer.poll() is None, f"the writer stopped early: {writer.stderr.read().decode()}"
            kill_daemon(mount)
            writer.wait(timeout=60)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        err = writer.stderr.read().decode()
        assert writer.returncode == 0, f"writer failed:\n{err}"
        events = read_log(log_path)
        assert events[-1][0] == "X", f"the writer should have been stopped by the dead mount: {events[-1]}"
        assert int(events[-1][1]) in (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO), events[-1]
        seen += sum(1 for ev in events[before:] if ev[0] in ("C", "F"))

        if round_no % 2 == 0:
            # the dead daemon left a stale mountpoint: the next mount cleans it up
            with pytest.raises(OSError) as info:
                os.statvfs(mount.path)
            assert info.value.errno == errno.ENOTCONN
        else:
            subprocess.run(["fusermount3", "-u", "-z", str(mount.path)], capture_output=True)
        mount.start()
        present = check_dir(workdir, events)
    assert seen >= 2 * ROUNDS, f"only {seen} closes/fsyncs happened before the kills: too little was tested"
    mount.umount()
    check_store(mount.store, present)
    r = sessionfs("verify", str(mount.store), "--data", check=False)   # the store's own consistency check
    assert r.returncode == 0, f"sessionfs verify --data found problems:\n{r.stdout}{r.stderr}"


FUSECTL = Path("/sys/fs/fuse/connections")


def errno_of(call, *args) -> int | None:
    try:
        call(*args)
    except OSError as exc:
        return exc.errno
    return None


def start_waiting_request(mount: Mount, name: str) -> tuple[threading.Thread, list]:
    """Stop the daemon, then start a lookup of a name the kernel has never seen (no cached
    entry) in a thread; return once that thread waits inside FUSE for the daemon's answer."""
    os.kill(mount.pid, signal.SIGSTOP)
    tid: list[int] = []
    result: list[int | None] = []

    def lookup() -> None:
        tid.append(threading.get_native_id())
        result.append(errno_of(os.stat, mount.sessions / name))

    thread = threading.Thread(target=lookup)
    thread.start()
    wait_for(lambda: bool(tid), 10, "the lookup thread")
    wait_for(lambda: "fuse" in _wchan(tid[0]) or _wchan(tid[0]) == "request_wait_answer", 30,
             "the lookup to wait for the stopped daemon")
    return thread, result


def _wchan(tid: int) -> str:
    try:
        return Path(f"/proc/self/task/{tid}/wchan").read_text()
    except OSError:
        return ""


def end_connection(mount: Mount, how: str) -> int | None:
    """End the mount's connection: "killed" (SIGKILL, nothing waiting), "killed-waiting" (SIGKILL
    while a lookup waits for the daemon) or "aborted" (/sys/fs/fuse/connections/N/abort while a
    lookup waits; the daemon lives on for a moment). The waiting lookup's errno, if any."""
    conn = os.minor(os.stat(mount.path).st_dev)
    if how == "killed":
        kill_daemon(mount)
        return None
    thread, result = start_waiting_request(mount, f"never-looked-up-{how}-{time.monotonic_ns()}")
    if how == "killed-waiting":
        kill_daemon(mount)
    else:
        (FUSECTL / str(conn) / "abort").write_text("1")
        os.kill(mount.pid, signal.SIGCONT)
        mount.pid = None        # alive until it notices; sessionfs mount/umount wait for it
    thread.join(30)
    assert not thread.is_alive(), "the waiting lookup did not return when the connection ended"
    return result[0]


@pytest.fixture
def fusectl():
    """/sys/fs/fuse/connections, mounted for the test if it is not (and unmounted after)."""
    mounted = False
    if mounted_here(str(FUSECTL)) != "fusectl":
        r = subprocess.run(["mount", "-t", "fusectl", "fusectl", str(FUSECTL)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount fusectl to abort a connection: {r.stderr.strip()}")
        mounted = True
    yield FUSECTL
    if mounted:
        subprocess.run(["umount", str(FUSECTL)], capture_output=True)


@pytest.mark.parametrize("how", ["killed", "killed-waiting", "aborted"])
def test_a_dead_daemons_mountpoint_is_cleaned_up_by_mount_and_by_umount(mount: Mount, how, request):
    """Whether the daemon died or its connection was aborted, requests waiting at that moment
    fail with ECONNABORTED and later ones with ENOTCONN; sessionfs mount and umount both
    recognise the dead mount, wait for its daemon and clean it up, and nothing closed is lost."""
    if how == "aborted":
        request.getfixturevalue("fusectl")
    d = mount.sessions / "s"
    d.mkdir()
    (d / "closed.txt").write_bytes(b"closed before the crash\n" * 1000)
    for cleanup in ("mount", "umount"):
        waiting = end_connection(mount, how)
        assert waiting == (None if how == "killed" else errno.ECONNABORTED)
        assert errno_of(os.listdir, mount.path) == errno.ENOTCONN
        assert is_stale(str(mount.path))
        if cleanup == "umount":
            r = sessionfs("umount", str(mount.path), check=False)
            assert r.returncode == 0, r.stderr
            assert not mounted_here(mount.path)
            os.statvfs(mount.path)      # a plain directory again
        mount.start()                   # after umount, or itself cleaning up the dead mountpoint
        assert (d / "closed.txt").read_bytes() == b"closed before the crash\n" * 1000


def test_umount_waits_for_the_daemon_of_an_aborted_connection(mount: Mount, fusectl):
    """After an abort the daemon still runs (committing, holding the store) until it notices:
    umount detaches the dead mount and then waits for it, as after a normal unmount."""
    d = mount.sessions / "s"
    d.mkdir()
    (d / "closed.txt").write_bytes(b"closed before the abort\n")
    daemon = mount.pid
    conn = os.minor(os.stat(mount.path).st_dev)
    os.kill(daemon, signal.SIGSTOP)
    (fusectl / str(conn) / "abort").write_text("1")
    r = sessionfs("umount", "--timeout", "1", str(mount.path), check=False)
    assert r.returncode != 0 and f"daemon {daemon} did not exit" in r.stderr, r.stderr
    assert not mounted_here(mount.path)
    os.kill(daemon, signal.SIGCONT)
    wait_dead(daemon)
    mount.pid = None
    mount.start()
    assert (d / "closed.txt").read_bytes() == b"closed before the abort\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unmounts_cleanly_and_commits_everything(mount: Mount, signum):
    d = mount.sessions / "sig"
    d.mkdir()
    files = {f"f{i:02d}.bin": random.Random(i).randbytes(300_000 + i) for i in range(24)}
    for name, data in files.items():
        (d / name).write_bytes(data)            # closed, not fsynced: still queued when the signal comes
    pid = mount.pid
    os.kill(pid, signum)
    wait_dead(pid)
    mount.pid = None
    assert not mounted_here(mount.path), "the daemon exited without unmounting"
    os.statvfs(mount.path)
    with Store.open(mount.store, readonly=True) as ro:     # committed by the daemon itself, no replay needed
        assert os.listdir(ro.root / "staging") == []
        for name, data in files.items():
            assert ro.read_path(f"sessions/sig/{name}") == data
    mount.start()
    assert sorted(p.name for p in d.iterdir()) == sorted(files)
