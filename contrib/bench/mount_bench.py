"""The mount vs the same files on the plain disk.

    python -m contrib.bench.mount_bench [--quick] [--repeats R] [--dir DIR] [--keep]

Mounts a store with the real ``sessionfs mount`` (daemonized) and prints, in one
run, each number as the median over the repeats and as a ratio mount/plain (so
2.0x means the mount takes twice as long):

- ``metadata.json`` of 1,000 sessions: list ``sessions/`` and read and parse every
  metadata.json, on a fresh mount (cold), then again (warm);
- one whole 2-hour session (profile "full" of ``contrib.corpus``: every JSON and
  attachment file), cold then warm;
- sequential read (1 MiB reads) of a 256 MB attachment (``--quick``: 32 MB),
  cold then warm;
- writing one 2-hour session through the mount: until the last close() returned,
  and until everything is durable (mount: one fsync of the session directory;
  plain: fsync of every file and directory);
- close() latency of 1 MB files, p50 and p99.

Cold means: the mount was just remounted (daemon cache and kernel caches empty)
and the page cache was dropped (``echo 3 > /proc/sys/vm/drop_caches``, which
needs root; without it the plain baseline is warm and the output says so) before
both the mount and the plain runs. The plain files live in the same file system
as the store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
READ_BUF = 1 << 20
MB = 1_000_000


# ---------------------------------------------------------------- data
def session_files(seed: int, index: int, profile: str = "full", attachments: bool = True) -> tuple[str, dict]:
    """(id, {relative path: bytes}) of one generated session in the mount's layout."""
    from contrib.corpus import generate_session
    from store.core.layout import split_session

    session, blobs = generate_session(seed, index, profile=profile, attachments=attachments)
    files = {p: orjson.dumps(v, option=JSON_OPTS) for p, v in split_session(session).items()}
    for name, blob in blobs.items():
        files[f"attachments/{name}"] = blob
    return session["id"], files


def many_metadata(n: int, variants: int = 10) -> dict[str, bytes]:
    """{id: metadata.json bytes} of ``n`` distinct sessions: generated small json-only sessions,
    each also under ``variants - 1`` other ids and names (cheaper than generating all)."""
    import uuid

    from contrib.corpus import generate_session
    from store.core.layout import split_session

    rnd = random.Random(99)
    out: dict[str, bytes] = {}
    i = 0
    while len(out) < n:
        session, _ = generate_session(7, 10_000 + i, profile="small", attachments=False)
        base = split_session(session)["metadata.json"]
        for j in range(min(variants, n - len(out))):
            sid = session["id"] if j == 0 else str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            doc = {**base, "id": sid, "name": base.get("name", "") + (f" (#{j})" if j else "")}
            out[sid] = orjson.dumps(doc, option=JSON_OPTS)
        i += 1
    return out


def variant(sid: str, files: dict[str, bytes], k: int) -> dict[str, bytes]:
    """Another session like ``files`` (same sizes and kinds of content) that shares no chunk with
    it: a new id in every JSON file, every 4 KiB of each attachment changed (cheaper than
    generating a new session)."""
    import uuid

    new_id = str(uuid.UUID(int=random.Random(k).getrandbits(128), version=4)).encode()
    out = {}
    for rel, data in files.items():
        if rel.endswith(".json"):
            out[rel] = data.replace(sid.encode(), new_id)
        else:
            b = bytearray(data)
            b[::4096] = bytes(x ^ k for x in b[::4096])
            out[rel] = bytes(b)
    return out


def big_blob(size: int) -> bytes:
    """An incompressible attachment (video-like) of ``size`` bytes."""
    return random.Random(42).randbytes(size)


def write_plain(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


# ---------------------------------------------------------------- the mount
class Mounted:
    """``sessionfs mount`` of ``store`` at ``mnt``; ``env``: the CLI's environment (None: ours);
    ``cwd``: its working directory (``python -m`` imports from there before PYTHONPATH)."""

    def __init__(self, store: Path, mnt: Path, env: dict | None = None, cwd: Path | None = None):
        self.store, self.mnt, self.env, self.cwd = store, mnt, env, cwd
        self.up = False

    def _cli(self, *args: str) -> None:
        r = subprocess.run([sys.executable, "-m", "store.cli", *args], capture_output=True, text=True, timeout=600,
                           env=self.env, cwd=self.cwd)
        if r.returncode != 0:
            raise RuntimeError(f"sessionfs {' '.join(args)}: {r.stderr.strip()}")

    def mount(self) -> None:
        self._cli("mount", str(self.store), str(self.mnt))
        self.up = True

    def umount(self) -> None:
        if self.up:
            self._cli("umount", str(self.mnt))
            self.up = False

    def remount(self) -> None:
        self.umount()
        self.mount()

    def cleanup(self) -> None:
        try:
            self.umount()
        except Exception:  # noqa: BLE001 - fall back to a lazy unmount
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
            self.up = False


def drop_caches() -> bool:
    """Write back and drop the page cache (root only); True when it was dropped."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- the measured operations
def read_file(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    n = 0
    try:
        while chunk := os.read(fd, READ_BUF):
            n += len(chunk)
    finally:
        os.close(fd)
    return n


def read_metadata(sessions: Path, ids: set[str]) -> float:
    t = time.perf_counter()
    seen = 0
    for name in os.listdir(sessions):
        if name in ids:
            with open(sessions / name / "metadata.json", "rb") as f:
                orjson.loads(f.read())
            seen += 1
    dt = time.perf_counter() - t
    assert seen == len(ids), f"found {seen} of {len(ids)} sessions"
    return dt


def read_tree(root: Path) -> float:
    t = time.perf_counter()
    todo = [root]
    while todo:
        d = todo.pop()
        for e in os.scandir(d):
            if e.is_dir(follow_symlinks=False):
                todo.append(Path(e.path))
            else:
                read_file(Path(e.path))
    return time.perf_counter() - t


def resident_share(path: Path) -> float | None:
    """The share of ``path``'s bytes in the page cache (util-linux ``fincore``; None without it).
    A "warm" read of a file that reclaim has punched holes into is not served by the cache alone:
    every hole is a read request to the file system."""
    try:
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES,SIZE", str(path)], capture_output=True, text=True,
                             timeout=60).stdout.split()
        return int(out[0]) / max(1, int(out[1]))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def read_big(path: Path) -> float:
    t = time.perf_counter()
    read_file(path)
    return time.perf_counter() - t


def write_session(root: Path, files: dict[str, bytes], durable) -> tuple[float, float]:
    """Seconds until the last close() returned, and until ``durable(root, files)`` returned."""
    t = time.perf_counter()
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    closed = time.perf_counter() - t
    durable(root, files)
    return closed, time.perf_counter() - t


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_plain(root: Path, files: dict[str, bytes]) -> None:
    dirs = {root}
    for rel in files:
        fsync_path(root / rel)
        dirs.update(p for p in (root / rel).parents if root in p.parents or p == root)
    for d in dirs:
        fsync_path(d)


def durable_mount(root: Path, files: dict[str, bytes]) -> None:
    fsync_path(root)        # fsyncdir: everything queued becomes committed and durable


def close_latencies(root: Path, n: int, pool: bytes) -> list[float]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        start = (i * 7919 * 4096) % (len(pool) - MB)
        data = pool[start:start + MB]
        fd = os.open(root / f"f{i:04d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        t = time.perf_counter()
        os.close(fd)
        out.append(time.perf_counter() - t)
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# ---------------------------------------------------------------- the run
def run(args) -> int:
    from store import Store

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sessionfs-mount-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    store_dir, mnt, plain = base / "store", base / "mnt", base / "plain" / "sessions"
    mnt.mkdir(exist_ok=True)
    plain.mkdir(parents=True, exist_ok=True)
    big_size = (32 if args.quick else 256) * MB
    n_meta = 1000
    n_close = 60 if args.quick else 200
    repeats = args.repeats or (3 if args.quick else 5)
    t_setup = time.perf_counter()

    # -- data: 1,000 small json-only sessions, one full session, one big attachment
    meta = many_metadata(n_meta)
    full_id, full = session_files(7, 0, profile="full")
    full_bytes = sum(len(v) for v in full.values())
    big_rel = "bench-big/attachments/recording.mp4"
    big = big_blob(big_size)
    everything = {f"{sid}/metadata.json": data for sid, data in meta.items()}
    everything.update({f"{full_id}/{rel}": data for rel, data in full.items()})
    everything[big_rel] = big
    write_plain(plain, everything)
    with Store.open(store_dir, create=True) as store:
        items = list(everything.items())
        for k in range(0, len(items), 200):
            store.write_files({f"sessions/{rel}": data for rel, data in items[k:k + 200]})
        store.flush()
    del everything, items
    write_sets = [variant(full_id, full, r + 1) for r in range(repeats)]
    pool = random.Random(5).randbytes(64 * MB)
    setup_s = time.perf_counter() - t_setup

    m = Mounted(store_dir, mnt)
    rows: dict[str, dict[str, list[float]]] = {}

    def record(key: str, side: str, value: float) -> None:
        rows.setdefault(key, {"mount": [], "plain": []})[side].append(value)

    dropped = True
    ids = set(meta)
    try:
        m.mount()
        msess = mnt / "sessions"
        # sanity: the mount serves the same bytes
        assert hashlib.sha256((msess / big_rel).read_bytes()).digest() == hashlib.sha256(big).digest()
        for r in range(repeats):
            m.remount()
            dropped &= drop_caches()
            record("meta_cold", "mount", read_metadata(msess, ids))
            record("session_cold", "mount", read_tree(msess / full_id))
            record("big_cold", "mount", read_big(msess / big_rel))
            record("meta_warm", "mount", read_metadata(msess, ids))
            record("session_warm", "mount", read_tree(msess / full_id))
            record("big_warm", "mount", read_big(msess / big_rel))
            dropped &= drop_caches()
            record("meta_cold", "plain", read_metadata(plain, ids))
            record("session_cold", "plain", read_tree(plain / full_id))
            record("big_cold", "plain", read_big(plain / big_rel))
            record("meta_warm", "plain", read_metadata(plain, ids))
            record("session_warm", "plain", read_tree(plain / full_id))
            record("big_warm", "plain", read_big(plain / big_rel))

            closed, durable = write_session(msess / f"written-{r}", write_sets[r], durable_mount)
            record("write_closed", "mount", closed)
            record("write_durable", "mount", durable)
            closed, durable = write_session(plain / f"written-{r}", write_sets[r], durable_plain)
            record("write_closed", "plain", closed)
            record("write_durable", "plain", durable)

            lat = close_latencies(msess / f"close-{r}", n_close, pool)
            record("close_p50", "mount", pct(lat, 0.5))
            record("close_p99", "mount", pct(lat, 0.99))
            lat = close_latencies(plain / f"close-{r}", n_close, pool)
            record("close_p50", "plain", pct(lat, 0.5))
            record("close_p99", "plain", pct(lat, 0.99))
            fsync_path(msess)               # let the queue drain before the next repeat
        stats = orjson.loads((mnt / ".sessionfs" / "stats.json").read_bytes())
    finally:
        m.cleanup()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    # -- report
    full_mb = full_bytes / MB
    big_mb = big_size / MB
    labels = {
        "meta_cold": (f"metadata.json x{n_meta}, fresh mount (cold)", None),
        "meta_warm": (f"metadata.json x{n_meta}, again (warm)", None),
        "session_cold": (f"one 2-hour session, {len(full)} files {full_mb:.1f} MB, cold", full_mb),
        "session_warm": ("one 2-hour session, warm", full_mb),
        "big_cold": (f"sequential read {big_mb:.0f} MB attachment, cold", big_mb),
        "big_warm": (f"sequential read {big_mb:.0f} MB attachment, warm", big_mb),
        "write_closed": ("write one 2-hour session, until last close()", full_mb),
        "write_durable": ("write one 2-hour session, until durable", full_mb),
        "close_p50": ("close() of a 1 MB file, p50", None),
        "close_p99": ("close() of a 1 MB file, p99", None),
    }
    print(f"sessionfs mount benchmark{' (--quick)' if args.quick else ''}: medians of {repeats} repeats; "
          f"ratio = mount time / plain-disk time")
    if not dropped:
        print("note: could not drop the page cache (not root): 'cold' plain-disk reads are warm")
    print(f"{'':52} {'mount':>16} {'plain disk':>16} {'ratio':>8}")
    for key, (label, mb) in labels.items():
        mount_v = statistics.median(rows[key]["mount"])
        plain_v = statistics.median(rows[key]["plain"])
        print(f"{label:52} {_fmt(mount_v, mb):>16} {_fmt(plain_v, mb):>16} {mount_v / plain_v:>7.2f}x")
    if args.verbose:
        for key, sides in rows.items():
            print(f"  {key}: mount {['%.4f' % v for v in sides['mount']]} plain {['%.4f' % v for v in sides['plain']]}")
    print(f"(setup {setup_s:.1f} s; store after the run: {stats['files']} files, "
          f"{stats['logical_bytes'] / MB:.0f} MB logical, {stats['stored_bytes'] / MB:.0f} MB stored; "
          f"kernel {os.uname().release}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


def _fmt(seconds: float, mb: float | None) -> str:
    if seconds < 0.01:
        text = f"{seconds * 1e6:.0f} us"
    elif seconds < 10:
        text = f"{seconds * 1000:.0f} ms"
    else:
        text = f"{seconds:.1f} s"
    if mb:
        text += f" {mb / seconds:.0f}MB/s"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m contrib.bench.mount_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="32 MB attachment, 3 repeats, fewer close() samples")
    p.add_argument("--repeats", type=int, default=0, help="repeats (default 5, --quick 3)")
    p.add_argument("--dir", help="work directory (default: a new temp dir; its file system is the 'plain disk')")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--verbose", "-v", action="store_true", help="also print every sample")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
