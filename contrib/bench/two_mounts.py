"""The delay until mount B of a shared store sees a file closed on mount A.

    python -m contrib.bench.two_mounts [--files 100] [--size 4K]

Starts SeaweedFS and PostgreSQL (``contrib.scaleout.both``) in a temporary directory, sets up
two STORE directories of one shared store and mounts both. For each file: A writes and closes
it (a new name each time), then B polls ``open`` + read until it reads the whole content; the
delay runs from A's ``close`` returning to B's first whole read. Prints the median, p95 and
maximum in milliseconds, and the same for a rewrite of one existing name (B has it cached).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from contrib.scaleout.both import start_servers
from store.core.units import parse_size

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from mounting import Mount, sessionfs  # noqa: E402

#: A delay longer than this is reported as a failure to see the file at all.
GIVE_UP_S = 60


def seen_after(path: Path, data: bytes) -> float:
    """Seconds until ``path`` reads as ``data``."""
    start = time.monotonic()
    while time.monotonic() - start < GIVE_UP_S:
        try:
            if path.read_bytes() == data:
                return time.monotonic() - start
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"{path} did not show the new content within {GIVE_UP_S} s")


def summary(delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms ({len(ms)} files)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--size", default="4K")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="sfs-two-mounts-"))
    servers: list = []
    mounts: list[Mount] = []
    try:
        objects, catalog = start_servers(work / "servers", servers)
        for tag in "ab":
            sessionfs("init", str(work / f"store-{tag}"), "--objects", objects, "--catalog", catalog)
            mounts.append(Mount(work / f"store-{tag}", work / f"mnt-{tag}").start())
        a, b = (m.sessions / "bench" for m in mounts)
        a.mkdir()
        new, rewrite = [], []
        for i in range(args.files):
            data = os.urandom(size)
            (a / f"f{i}").write_bytes(data)
            new.append(seen_after(b / f"f{i}", data))
        for i in range(args.files):
            data = os.urandom(size)
            (a / "same").write_bytes(data)
            rewrite.append(seen_after(b / "same", data))
        print(f"new file, closed on A until whole on B: {summary(new)}")
        print(f"rewrite of a name B has read:          {summary(rewrite)}")
    finally:
        for m in mounts:
            m.cleanup()
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
