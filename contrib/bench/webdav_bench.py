"""WebDAV through davfs2 vs the FUSE mount vs the same files on the plain disk, in one run.

    python -m contrib.bench.webdav_bench [--sessions 1000] [--repeats 3] [--dir DIR]

One daemon serves both front ends (``sessionfs mount STORE MNT --webdav 127.0.0.1:PORT``),
davfs2 mounts its WebDAV side (``contrib.davfs``). Printed as medians over the repeats and as
ratios against the plain directory (2.0x: twice as long):

- ``metadata.json`` of N sessions: list ``sessions/``, read and parse every metadata.json;
  first on fresh mounts (FUSE remounted, davfs2 remounted with an empty cache, page cache
  dropped), then warm;
- ``grep -r`` of a word over one whole session tree (profile "full" of ``contrib.corpus``:
  every JSON and attachment file), first and warm the same way.

Needs root (drop_caches, mount.davfs) and davfs2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contrib.bench.mount_bench import drop_caches, many_metadata, read_metadata, session_files, write_plain
from contrib.davfs import Davfs

USER = "bench"
PASSWORD = "bench-password"
WORD = "function"


def grep_tree(root: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run(["grep", "-r", "-c", WORD, str(root)], capture_output=True, timeout=3600)
    dt = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    return dt


def cli(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "store.cli", *args], check=True, env=env, timeout=3600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="sessionfs-webdav-bench-"))
    plain, store, mnt, dav = work / "plain", work / "store", work / "mnt", work / "dav"

    metas = many_metadata(args.sessions)
    sid, files = session_files(5, 0, profile="full")
    tree = {f"sessions/{i}/metadata.json": data for i, data in metas.items()}
    tree.update({f"sessions/{sid}/{rel}": data for rel, data in files.items()})
    write_plain(plain, tree)
    print(f"{len(metas)} sessions + one full session ({sum(map(len, files.values())) / 1e6:.1f} MB) in {work}")

    port = 20000 + os.getpid() % 20000
    mount = ("mount", str(store), str(mnt), "--webdav", f"127.0.0.1:{port}", "--webdav-user", USER)
    env = dict(os.environ, SESSIONFS_PASSWORD=PASSWORD)
    mnt.mkdir(parents=True, exist_ok=True)
    cli(*mount, env=env)
    davfs = Davfs(f"http://127.0.0.1:{port}/", dav, USER, PASSWORD)
    try:
        subprocess.run(["cp", "-r", f"{plain}/sessions/.", f"{mnt}/sessions/"], check=True, timeout=3600)
        os.sync()
        ids = set(metas)
        where = {"plain": plain, "FUSE": mnt, "davfs2": dav}
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            davfs.cleanup()
            cli("umount", str(mnt))
            cli(*mount, env=env)
            davfs = Davfs(davfs.url, dav, USER, PASSWORD).mount()
            dropped = drop_caches()
            for name, root in where.items():
                results.setdefault(("metadata.json x N, first", name), []).append(read_metadata(root / "sessions", ids))
            for name, root in where.items():
                results.setdefault(("metadata.json x N, warm", name), []).append(read_metadata(root / "sessions", ids))
            drop_caches()
            for name, root in where.items():
                results.setdefault(("grep -r, one session, first", name), []).append(grep_tree(root / "sessions" / sid))
            for name, root in where.items():
                results.setdefault(("grep -r, one session, warm", name), []).append(grep_tree(root / "sessions" / sid))
        print(f"page cache dropped: {dropped}; medians of {args.repeats}")
        print(f"{'':34} {'plain':>9} {'FUSE':>9} {'davfs2':>9} {'FUSE/plain':>11} {'davfs2/plain':>13}")
        for case in dict.fromkeys(c for c, _ in results):
            m = {n: statistics.median(results[(case, n)]) for n in where}
            print(f"{case:34} {m['plain'] * 1e3:8.1f}ms {m['FUSE'] * 1e3:8.1f}ms {m['davfs2'] * 1e3:8.1f}ms "
                  f"{m['FUSE'] / m['plain']:10.1f}x {m['davfs2'] / m['plain']:12.1f}x")
    finally:
        davfs.cleanup()
        subprocess.run([sys.executable, "-m", "store.cli", "umount", str(mnt)], capture_output=True, timeout=600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
