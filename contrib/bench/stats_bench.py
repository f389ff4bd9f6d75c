"""What keeping statistics counters costs and saves, for two versions of the code in one run.

    python -m contrib.bench.stats_bench --code /tmp/base --code . [--files 10000] [--rounds 3]

For each code tree (put first on PYTHONPATH of a child process; the trees alternate,
``--rounds`` times): ``commit``: 1000 small files (1 KiB), each its own commit
(``write_files`` + ``settle``), the time per commit; ``batch``: 1000 more in one
commit; ``stats``: a store of ``--files``
files mounted with that code, the time to open and read ``.sessionfs/stats.json``
(median of 20 reads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = 1000


def _commit_bench(work: Path) -> tuple[float, float]:
    """(s per commit of one small file, s to commit 1000 small files at once)."""
    from store import Store
    with Store.open(work / "commit", create=True) as store:
        start = time.perf_counter()
        for i in range(SMALL):
            store.write_files({f"sessions/s{i // 50}/f{i}.json": os.urandom(512).hex().encode()})
            store.settle()
        each = (time.perf_counter() - start) / SMALL
        start = time.perf_counter()
        store.write_files({f"sessions/b{i // 50}/f{i}.json": os.urandom(512).hex().encode() for i in range(SMALL)})
        store.settle()
        return each, time.perf_counter() - start


def _stats_bench(work: Path, files: int) -> float:
    from store import Store
    root, mnt = work / "stats", work / "mnt"
    with Store.open(root, create=True) as store:
        for g in range(0, files, 500):
            store.write_files({f"sessions/s{i // 20}/f{i}.json": b'{"n": %d}' % i
                               for i in range(g, min(files, g + 500))})
        store.flush()
    mnt.mkdir()
    subprocess.run([sys.executable, "-m", "store.cli", "mount", str(root), str(mnt)], check=True, timeout=300)
    try:
        samples = []
        for _ in range(20):
            start = time.perf_counter()
            with open(mnt / ".sessionfs" / "stats.json", "rb") as f:
                json.loads(f.read())
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)
    finally:
        subprocess.run([sys.executable, "-m", "store.cli", "umount", str(mnt)], check=True, timeout=300)


def _child(files: int) -> None:
    with tempfile.TemporaryDirectory(prefix="stats-bench-") as tmp:
        work = Path(tmp)
        each, batch = _commit_bench(work)
        print(json.dumps({"commit": each, "batch": batch, "stats": _stats_bench(work, files)}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", action="append", required=True, help="a source tree (repeat)")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.files)
        return 0
    results: dict[str, list[dict]] = {c: [] for c in args.code}
    for _ in range(args.rounds):
        for code in args.code:
            # Run as a script (not -m): the code tree under test is the first place imports look.
            env = {**os.environ, "PYTHONPATH": os.path.abspath(code)}
            out = subprocess.run([sys.executable, __file__, "--child", "--code", code, "--files", str(args.files)],
                                 env=env, cwd=code, check=True, capture_output=True, text=True,
                                 timeout=3600).stdout
            results[code].append(json.loads(out.strip().splitlines()[-1]))
    columns = (("commit", "ms per commit (1 file)"), ("batch", "ms for 1000 files at once"),
               ("stats", "ms to read stats.json"))
    print(f"{'code':32s}" + "".join(f" {title:>30s}" for _, title in columns))
    for code, runs in results.items():
        line = f"{code:32s}"
        for key, _ in columns:
            ms = [r[key] * 1e3 for r in runs]
            line += f" {statistics.median(ms):12.3f} ({min(ms):7.3f}-{max(ms):7.3f})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
