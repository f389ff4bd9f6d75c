"""Crash loop: a writer on a real mount, the daemon SIGKILLed at a random moment, remount, check.

Each loop mounts the store (daemonized, as a user would), starts a writer process that
works in ``sessions/w/`` (create, in-place rewrite, append, fsync, atomic replace by
rename, unlink, mkdir) and sometimes drops a legacy session into ``import/``, kills the
daemon with SIGKILL a random 50-400 ms after the writer is inside the mount, waits for the
writer to end (its next call fails), and at the next mount checks the contract against
the writer's log (one line per step, written after the call returned):

- every closed (``C``) or fsynced (``F``) file is present with exactly that content;
- a file being written when the daemon died is its last closed version, the new one
  whole, or (in-place rewrite / create) empty: never torn, never mixed;
- an interrupted rename shows either the old pair or the new one, never half;
- an unlinked file is gone; an interrupted unlink leaves the file whole or absent;
- every ``verify_every`` loops and at the end (unmounted): ``sessionfs verify --data`` is
  clean, and every imported legacy session present is whole (the legacy values);
- the writer itself ended as it should: its last call failed with ENOTCONN because the
  daemon died. Any other end (a traceback, another errno, a hang) is a violation and its
  stderr is shown, so a broken writer cannot shrink the coverage unseen.

The writer keeps some fsynced in-place rewrites open for a few steps, so many kills land
between an ``F`` and its ``C``: the counts ``f_after_inplace`` (such fsyncs) and
``killed_fsynced_open`` (of them, still open at the kill) show how often that case ran.

With ``--maintenance`` the daemon recompresses and garbage-collects/compacts eagerly (no
age or grace limits), so kills also land during background compression and GC compaction;
every 5th loop the writer waits until the compressor has worked (it only runs when I/O is
quiet), counted as ``compressed_before_kill``.

With ``--shared`` the store is a shared one (SeaweedFS and PostgreSQL started in the work
directory) with two mounts of two STORE directories: A is killed as above, B stays up the whole
run, and after each loop B must show exactly what A shows after its remount (close-to-open
across mounts; B may lag by the time a commit notification takes, so it is polled up to
``SETTLE_S``). ``verify --data`` runs on A's directory, with B still mounted.

Run: ``python -m contrib.crashloop --loops 1000 [--maintenance] [--shared] [--workdir DIR] [--seed N]``; prints the
counts (loops, kills, violations, writer steps, ...) as JSON on the last line and exits 1 on violations.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from mounting import Mount, proc_status_kb, process_alive, sessionfs  # noqa: E402
from contrib.scaleout.both import start_servers  # noqa: E402

EMPTY = hashlib.sha256(b"").hexdigest()
# How a writer ends when the daemon under it dies: its next call on the mount fails so.
DEAD_MOUNT_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)
# Maintenance as eager as it goes: cold at once, garbage at once, a whole core.
MAINTENANCE_ARGS = ("--cold-age", "0", "--gc-grace", "0", "--cpu-share", "1")
#: How long the second mount of a shared store may take to show what the first committed.
SETTLE_S = 30

WRITER = r'''
import hashlib, os, random, shutil, sys
mnt, log_path, seed, legacy_dir, import_sid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rnd = random.Random(seed)
POOL = random.Random(7).randbytes(1 << 20)
SIZES = (0, 100, 3000, 20000, 70000, 150000)
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def say(*f):
    os.write(log, (" ".join(str(x) for x in f) + "\n").encode())
def sha(b):
    return hashlib.sha256(b).hexdigest()
def body():
    n = rnd.choice(SIZES)
    s = rnd.randrange(len(POOL) - n)
    return POOL[s:s + n]
def write_all(fd, data):
    v = memoryview(data)
    while v:
        n = os.write(fd, v[:rnd.choice((4096, 30000, 131072))])
        v = v[n:]
# Relative paths from inside the mount: once the daemon is dead they fail (ENOTCONN); absolute
# ones would reach the plain directory under the detached mountpoint.
os.chdir(mnt)
W = os.path.join("sessions", "w")
cur = {}
dirs = ["."]
names = [f"f{i}" for i in range(6)]
def pick():
    return os.path.join(rnd.choice(dirs), rnd.choice(names)).removeprefix("./")
held = {}    # name -> (fd, data): rewritten in place and fsynced, kept open over later steps
def close(name, fd, data):
    os.close(fd)
    cur[name] = data
    say("C", name, sha(data))
def settle(name):
    """Close name first if it is held open (every step on a name starts from a closed file)."""
    if name in held:
        close(name, *held.pop(name))
def put(name, data, flags, payload, fsync_share, hold=False):
    """Write payload to name (opened with flags) so that the file holds data; log each step.

    With ``hold``, an in-place rewrite that was fsynced stays open for a few steps, so the kill
    often lands between its fsync and its close: then only the fsynced content is allowed."""
    settle(name)
    kind = "append" if flags & os.O_APPEND else "inplace"
    say("B", name, sha(data), kind)
    fd = os.open(os.path.join(W, name), flags, 0o644)
    write_all(fd, payload)
    if rnd.random() < fsync_share:
        os.fsync(fd)
        say("F", name, sha(data))
        if hold and kind == "inplace" and rnd.random() < 0.5:
            held[name] = (fd, data)
            return
    close(name, fd, data)
say("S", seed)
try:
    # What the last loop left (inside the try: the kill may land while this reads it).
    for dp, dn, fn in os.walk(W):
        for f in fn:
            p = os.path.join(dp, f)
            with open(p, "rb") as fh:
                cur[os.path.relpath(p, W)] = fh.read()
    dirs += [d for d in ("d0", "d1", "d2") if os.path.isdir(os.path.join(W, d))]
    if import_sid != "-" :
        imp = "import"                    # import/attachments/ was filled by the harness
        say("I", import_sid)
        shutil.copyfile(os.path.join(legacy_dir, "sessions", import_sid + ".json"),
                        os.path.join(imp, import_sid + ".json"))
        say("i", import_sid)
    for step in range(100000):
        for name in sorted(held):
            if rnd.random() < 0.1:
                settle(name)
        op = rnd.random()
        if op < 0.35:                                   # create / in-place rewrite
            data = body()
            put(pick(), data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, data, 0.3, hold=True)
        elif op < 0.5 and cur:                          # append
            name = rnd.choice(sorted(cur))
            settle(name)
            extra = body()[:20000] or b"x"
            put(name, cur[name] + extra, os.O_WRONLY | os.O_APPEND, extra, 0.3)
        elif op < 0.7:                                  # atomic replace: tmp + rename
            name = pick()
            settle(name)
            tmp = name + ".tmp"
            data = body()
            put(tmp, data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, data, 0.5)
            say("R", tmp, name)
            os.rename(os.path.join(W, tmp), os.path.join(W, name))
            cur[name] = cur.pop(tmp)
            say("r", tmp, name)
        elif op < 0.85 and cur:                         # unlink
            name = rnd.choice(sorted(cur))
            settle(name)
            say("U", name)
            os.unlink(os.path.join(W, name))
            del cur[name]
            say("u", name)
        elif op < 0.9:                                  # mkdir
            d = rnd.choice(("d0", "d1", "d2"))
            if d not in dirs:
                say("M", d)
                os.mkdir(os.path.join(W, d))
                dirs.append(d)
                say("m", d)
        else:                                           # read back what we know
            if cur:
                name = rnd.choice(sorted(cur))
                settle(name)
                with open(os.path.join(W, name), "rb") as fh:
                    if fh.read() != cur[name]:
                        say("X", name, "read-back differs")
except OSError as exc:
    say("E", exc.errno)
'''


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def observe(w: Path) -> dict[str, str]:
    out = {}
    for dp, _, fn in os.walk(w):
        for f in fn:
            p = Path(dp) / f
            out[str(p.relative_to(w))] = _sha_file(p)
    return out


def fsynced_in_place(lines: list[str]) -> tuple[int, int]:
    """(fsyncs that finished an in-place rewrite, of those still open when the daemon died)."""
    kind: dict[str, str] = {}
    steps, still_open = 0, set()
    for line in lines:
        f = line.split()
        if f[:1] == ["B"]:
            kind[f[1]] = f[3]
        elif f[:1] == ["F"] and kind.get(f[1]) == "inplace":
            steps += 1
            still_open.add(f[1])
        elif f[:1] == ["C"]:
            still_open.discard(f[1])
    return steps, len(still_open)


def kernel_stacks(pid: int, who: str) -> str:
    """Where each thread of a stuck process waits in the kernel (/proc/<pid>/task/*/stack)."""
    out = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except FileNotFoundError:
        return f"{who} {pid}: gone\n"
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(") ", 1)[1][0]
            with open(f"/proc/{pid}/task/{tid}/stack") as f:
                stack = f.read()
        except OSError as exc:
            state, stack = "?", f"({exc.strerror})\n"
        out.append(f"{who} {pid} thread {tid} state {state}:\n{stack}")
    return "".join(out)


def writer_failure(returncode: int, stderr: str, lines: list[str]) -> str | None:
    """Why the writer did not end as expected (its last call failed because the daemon died)."""
    last = lines[-1].split() if lines else []
    if returncode == 0 and last[:1] == ["E"] and int(last[1]) in DEAD_MOUNT_ERRNOS:
        return None
    return (f"writer exited with {returncode}, last log line {lines[-1] if lines else None!r}; "
            f"its stderr:\n{stderr[-4000:]}")


def check_log(lines: list[str], before: dict[str, str], seen: dict[str, str]) -> list[str]:
    """Violations of the contract, given the files before the loop and what the mount shows now."""
    known: dict[str, str | None] = dict(before)
    pending: dict[str, tuple[str, str]] = {}
    renaming: tuple[str, str, str | None, str | None] | None = None
    unlinking: set[str] = set()
    problems = []
    for line in lines:
        f = line.split()
        if not f:
            continue
        op = f[0]
        if op == "B":
            pending[f[1]] = (f[2], f[3])
        elif op in ("C", "F"):
            # Closed or fsynced: that content exactly, whatever the kind of write it finished.
            known[f[1]] = f[2]
            pending.pop(f[1], None)
        elif op == "R":
            renaming = (f[1], f[2], known.get(f[1]), known.get(f[2]))
        elif op == "r":
            known[f[2]] = known.get(f[1])
            known[f[1]] = None
            renaming = None
        elif op == "U":
            unlinking.add(f[1])
        elif op == "u":
            known[f[1]] = None
            unlinking.discard(f[1])
        elif op == "X":
            problems.append(f"writer read back different bytes from {f[1]}")
    names = set(known) | set(pending) | set(seen)
    if renaming:
        tmp, name, tsha, nsha = renaming
        got = (seen.get(tmp), seen.get(name))
        if got not in ((tsha, nsha), (None, tsha)):
            problems.append(f"rename {tmp} -> {name} half-visible: saw {got}, allowed {(tsha, nsha)} or "
                            f"{(None, tsha)}")
        names -= {tmp, name}
    for name in sorted(names):
        allowed = {known.get(name)}
        if name in pending:
            new, kind = pending[name]
            allowed.add(new)
            if kind == "inplace":
                allowed.add(EMPTY)
        if name in unlinking:
            allowed.add(None)
        got = seen.get(name)
        if got not in allowed:
            problems.append(f"{name}: content {got and got[:12]} not in allowed "
                            f"{[a and a[:12] for a in allowed]}")
    return problems


class CrashLoop:
    def __init__(self, workdir: Path, seed: int = 0, verify_every: int = 10, legacy_sessions: int = 8,
                 min_ms: int = 50, max_ms: int = 400, out=print, progress: int = 0,
                 keep_logs: bool = False, import_every: int = 7, mount_args: tuple[str, ...] = (),
                 compress_every: int = 0, shared: tuple[str, str] | None = None):
        """``shared``: (objects URL, catalog URL) of a shared store, mounted twice (see the module)."""
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.store = self.work / "store"
        self.mount = Mount(self.store, self.work / "mnt", *mount_args)
        self.other: Mount | None = None
        if shared:
            for d in (self.store, self.work / "store-b"):
                if not d.exists():
                    sessionfs("init", str(d), "--objects", shared[0], "--catalog", shared[1])
            self.other = Mount(self.work / "store-b", self.work / "mnt-b", *mount_args)
        self.rnd = random.Random(seed)
        self.seed = seed
        self.verify_every = verify_every
        self.min_ms, self.max_ms = min_ms, max_ms
        self.out = out
        self.progress = progress
        self.keep_logs = keep_logs
        self.import_every = import_every
        self.compress_every = compress_every
        self.legacy = self.work / "legacy"
        if not (self.legacy / "sessions").is_dir():
            from contrib.corpus import write_legacy_store
            write_legacy_store(self.legacy, legacy_sessions, seed=seed + 11, profile="small")
        self.legacy_ids = sorted(p.stem for p in (self.legacy / "sessions").glob("*.json"))
        self.imports_started: list[str] = []
        self.imports_closed: set[str] = set()
        self.counts = {"loops": 0, "kills": 0, "violations": 0, "verifies": 0, "imports": 0, "writer_steps": 0,
                       "f_after_inplace": 0, "killed_fsynced_open": 0, "compressed_before_kill": 0}
        self.violations: list[str] = []
        self.state: dict[str, str] = {}

    # -- one loop ------------------------------------------------------------------
    def loop(self, i: int) -> None:
        m = self.mount
        if m.pid is None:
            m.start()
            seen = observe(m.sessions / "w")
            if seen != self.state:
                self._violate(i, f"files changed across a clean remount: "
                                 f"{sorted(set(seen.items()) ^ set(self.state.items()))}")
            self.state = seen
        (m.sessions / "w").mkdir(exist_ok=True)
        sid = "-"
        if i % self.import_every == 3 % self.import_every and len(self.imports_started) < len(self.legacy_ids):
            sid = self.legacy_ids[len(self.imports_started)]
            self.imports_started.append(sid)
            self.counts["imports"] += 1
        if self.compress_every and i % self.compress_every == 0:
            self._await_compressor()
        log_path = self.work / f"writer-{i}.log"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(m.path), str(log_path),
                                   str(self.seed * 100_000 + i), str(self.legacy), sid],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The random delay starts once the writer is inside the mount (its "S" line): a kill
        # during its interpreter's start-up would leave it in the directory under the dead mount.
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline and not (
                log_path.exists() and log_path.stat().st_size):
            time.sleep(0.005)
        time.sleep(self.rnd.uniform(self.min_ms, self.max_ms) / 1000)
        pid = m.pid
        peak_mb = proc_status_kb(pid, "VmHWM") // 1024
        self.counts["peak_daemon_rss_mb"] = max(self.counts.get("peak_daemon_rss_mb", 0), peak_mb)
        m.kill9()
        self.counts["kills"] += 1
        try:
            _, err = writer.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            where = kernel_stacks(writer.pid, "writer") + kernel_stacks(pid, "daemon")
            writer.kill()
            _, err = writer.communicate()
            err = f"(killed: still running 120 s after the daemon was SIGKILLed)\n{where}{err}"
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        violations_before = self.counts["violations"]
        failure = writer_failure(writer.returncode, err, lines)
        if failure:
            self._violate(i, failure)
        self.imports_closed.update(ln.split()[1] for ln in lines if ln.startswith("i "))
        self.counts["writer_steps"] += sum(1 for ln in lines if ln[:1] in "CFrum")
        steps, still_open = fsynced_in_place(lines)
        self.counts["f_after_inplace"] += steps
        self.counts["killed_fsynced_open"] += still_open
        assert not process_alive(pid)
        m.start()
        seen = observe(m.sessions / "w")
        for sid in sorted(self.imports_closed):
            # At every instant a closed drop is in import/ or its session is in sessions/ (the
            # dropped file goes only in the commit that marks the imported session verified).
            if not ((m.path / "import" / f"{sid}.json").exists() or (m.sessions / sid).exists()):
                self._violate(i, f"dropped legacy file {sid}.json vanished: neither in import/ nor imported")
                self.imports_closed.discard(sid)
        for p in check_log(lines, self.state, seen):
            self._violate(i, p)
        self.state = seen
        if self.other is not None:
            self._check_other(i, seen)
        if self.counts["violations"] > violations_before:
            self.out(f"writer log of loop {i} kept: {log_path}")
        elif not self.keep_logs:
            log_path.unlink(missing_ok=True)
        self.counts["loops"] += 1
        if (i + 1) % self.verify_every == 0:
            self.verify(i)

    def _await_compressor(self) -> None:
        """Hold the writer back until this daemon's compressor has recompressed blocks or is at
        it (it waits for quiet I/O, which a running writer never leaves it), so that the kill
        lands after or during compression. Counted; a compressor with nothing to do is not."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = self.mount.stats()["maintenance"]
            c = m["background"]["compressor"]
            if c["blocks"] > 0 or c["state"] == "working":
                self.counts["compressed_before_kill"] += 1
                return
            if c["state"] == "idle" and m["blocks_pending"] == 0:
                return
            time.sleep(0.05)

    def _check_other(self, i: int, seen: dict[str, str]) -> None:
        """The second mount shows what the first does, once its notifications have arrived.
        A dead second daemon is one violation (its log says why), and it is mounted again."""
        if not process_alive(self.other.pid):
            self._violate(i, f"mount B's daemon died; see {self.other.store / 'sessionfs.log'}")
            self.other.kill9()
            self.other.start()
        deadline = time.monotonic() + SETTLE_S
        while True:
            try:
                other = observe(self.other.sessions / "w")
            except FileNotFoundError:          # a file unlinked on A between B's listing and open
                other = None
            if other == seen:
                return
            if time.monotonic() > deadline:
                diff = sorted(set(seen.items()) ^ set((other or {}).items()))
                self._violate(i, f"mount B differs from mount A {SETTLE_S} s after A's remount: {diff}")
                return
            time.sleep(0.05)

    def _violate(self, i: int, what: str) -> None:
        self.counts["violations"] += 1
        self.violations.append(f"loop {i}: {what}")
        self.out(f"VIOLATION loop {i}: {what}")

    def verify(self, i: int) -> None:
        """Unmounted checks: the store's own verify and whole imported sessions."""
        m = self.mount
        # Let a queued import finish (it was dropped whole; the daemon imports it at mount).
        deadline = time.monotonic() + 10
        imp = m.path / "import"
        while time.monotonic() < deadline and imp.is_dir() and any(p.suffix == ".json" for p in imp.iterdir()):
            time.sleep(0.1)
        m.umount()
        self.counts["verifies"] += 1
        r = sessionfs("verify", "--data", str(self.store), check=False)
        if r.returncode != 0:
            self._violate(i, f"sessionfs verify --data failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        import orjson
        from store import Store
        from store.services.sessions import SessionStore
        with Store.open(self.store) as st:
            present = set(st.list_dir("sessions")) & set(self.legacy_ids)
            self.counts["imported_present"] = len(present)
            for sid in sorted(self.imports_closed - present):
                self._violate(i, f"legacy session {sid} was dropped whole into import/ but never imported")
            api = SessionStore(st)
            for sid in present:
                want = orjson.loads((self.legacy / "sessions" / f"{sid}.json").read_bytes())
                if api.load_full_session(sid) != want:
                    self._violate(i, f"imported session {sid} is not whole")

    def run(self, loops: int) -> dict:
        try:
            # Attachments of the legacy sessions go into import/attachments/ once, cleanly; the
            # loops then drop the session JSON files (the import itself runs under the kills).
            m = self.mount
            m.start()
            att = m.path / "import" / "attachments"
            att.mkdir(parents=True, exist_ok=True)
            for a in sorted((self.legacy / "attachments").iterdir()):
                if not (att / a.name).exists():
                    shutil.copyfile(a, att / a.name)
            m.umount()
            if self.other is not None:
                self.other.start()
            for i in range(loops):
                self.loop(i)
                if self.progress and (i + 1) % self.progress == 0:
                    self.out(json.dumps({"progress": True, **self.counts}))
            if loops % self.verify_every:
                self.verify(loops)
        finally:
            self.mount.cleanup()
            if self.other is not None:
                self.other.cleanup()
        return dict(self.counts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--verify-every", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--maintenance", action="store_true",
                    help="background compression and GC compaction with no age/grace limits, so the "
                         "kills also land during them")
    ap.add_argument("--shared", action="store_true",
                    help="a shared store (SeaweedFS + PostgreSQL started in the work directory), two mounts")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sfs-crashloop-"))
    start = time.monotonic()
    servers = []
    try:
        shared = start_servers(work / "servers", servers) if args.shared else None
        cl = CrashLoop(work, seed=args.seed, verify_every=args.verify_every,
                       legacy_sessions=max(8, min(60, args.loops // 7 + 1)),
                       out=lambda text: print(text, flush=True), progress=50,
                       mount_args=MAINTENANCE_ARGS if args.maintenance else (),
                       compress_every=5 if args.maintenance else 0, shared=shared)
        counts = cl.run(args.loops)
    finally:
        for server in servers:
            server.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    counts["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(counts))
    return 1 if counts["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
