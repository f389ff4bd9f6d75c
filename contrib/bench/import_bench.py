"""Legacy import throughput vs ``cp -r`` of the same legacy directory, in one run.

    python -m contrib.bench.import_bench [--quick] [--sessions N] [--profile P] [--jobs 1,2]
                                         [--legacy DIR] [--dir DIR] [--keep]

Generates a legacy store with ``contrib.corpus`` (default 16 sessions of profile
"full": ~6.6 MB of JSON and ~14 MB of PNG/WAV attachments each; ``--quick``: 4), or
uses ``--legacy DIR``. Then, in the same file system and the same run:

- ``cp -r`` of the legacy directory, and ``cp -r`` followed by ``sync -f`` (the
  import ends with a durable flush, so the second is the fair comparison);
- ``sessionfs import STORE LEGACY --jobs J`` into a fresh store for each J (split,
  write, read back and verify every session and attachment, record it), as a real
  process: wall time, peak RSS;
- the same import again (resume: everything already imported is skipped);
- ``sessionfs export STORE OUT --legacy`` (the rollback path).

Prints MB/s of legacy JSON, MB/s of everything (JSON + attachments), sessions/s and
the ratio to ``cp -r``. With root, the page cache is dropped before each timed step
(``echo 3 > /proc/sys/vm/drop_caches``); otherwise the source is warm for all steps
and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def run_rss(cmd: list, *, cold: bool) -> tuple[float, int, subprocess.CompletedProcess]:
    """Like run, measuring the child's peak RSS with wait4."""
    if cold:
        drop_caches()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    return seconds, usage.ru_maxrss * 1024, result


def sizes(legacy: Path) -> tuple[int, int, int]:
    """(sessions, JSON bytes, attachment bytes)."""
    files = [p for p in (legacy / "sessions").iterdir() if p.suffix == ".json"]
    att = sum(p.stat().st_size for p in (legacy / "attachments").iterdir()) if (legacy / "attachments").is_dir() \
        else 0
    return len(files), sum(p.stat().st_size for p in files), att


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contrib.bench.import_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 sessions")
    ap.add_argument("--sessions", type=int, help="number of generated sessions (default 16)")
    ap.add_argument("--profile", default="full", choices=("full", "small", "json-only"))
    ap.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to time (default 1,2)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--legacy", type=Path, help="use this legacy store instead of generating one")
    ap.add_argument("--dir", type=Path, help="work directory (default: a new temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="import-bench-", dir=args.dir))
    try:
        legacy = args.legacy
        if legacy is None:
            from contrib.corpus import write_legacy_store
            n = args.sessions or (4 if args.quick else 16)
            legacy = work / "legacy"
            t = time.perf_counter()
            print(f"generating {n} sessions (profile {args.profile}) ...", file=sys.stderr, flush=True)
            write_legacy_store(legacy, n, seed=42, profile=args.profile)
            print(f"  {time.perf_counter() - t:.1f} s", file=sys.stderr)
        count, json_bytes, att_bytes = sizes(legacy)
        total = json_bytes + att_bytes
        cold = drop_caches()
        results = []

        def line(name: str, seconds: float, rss: int | None = None, note: str = "") -> None:
            results.append({"step": name, "seconds": round(seconds, 3),
                            "json_mb_per_s": round(json_bytes / seconds / MB, 2),
                            "total_mb_per_s": round(total / seconds / MB, 2),
                            "sessions_per_s": round(count / seconds, 2),
                            "peak_rss_mb": round(rss / MB, 1) if rss else None, "note": note})

        seconds, _, proc = run_rss(["cp", "-r", legacy, work / "copy1"], cold=cold)
        assert proc.returncode == 0, proc.stderr
        line("cp -r", seconds)
        seconds, _, proc = run_rss(["sh", "-c", f'cp -r "{legacy}" "{work}/copy2" && sync -f "{work}/copy2"'],
                                   cold=cold)
        assert proc.returncode == 0, proc.stderr
        line("cp -r + sync", seconds)
        cp_seconds = seconds
        cli = [sys.executable, "-m", "store.cli"]
        last_store = None
        for jobs in [int(j) for j in args.jobs.split(",") if j]:
            store = work / f"store-j{jobs}"
            subprocess.run([*cli, "init", store], check=True, capture_output=True, cwd=ROOT)
            seconds, rss, proc = run_rss([*cli, "import", store, legacy, "--jobs", jobs, "--batch", args.batch,
                                          "--no-progress", "--report", work / f"report-j{jobs}.json"], cold=cold)
            assert proc.returncode in (0, 3), proc.stderr.decode()
            report = json.loads((work / f"report-j{jobs}.json").read_text())
            assert report["totals"]["imported"] == count, report["failed"][:3]
            line(f"sessionfs import --jobs {jobs}", seconds, rss, f"{seconds / cp_seconds:.1f}x cp -r + sync")
            last_store = store
        seconds, rss, proc = run_rss([*cli, "import", last_store, legacy, "--no-progress"], cold=cold)
        line("import again (resume: all skipped)", seconds, rss)
        seconds, rss, proc = run_rss([*cli, "export", last_store, work / "rollback", "--legacy"], cold=cold)
        assert proc.returncode == 0, proc.stderr
        line("sessionfs export --legacy", seconds, rss)
        stats = json.loads(subprocess.run([*cli, "stats", last_store, "--json"], capture_output=True,
                                          cwd=ROOT, check=True).stdout)
        print(f"legacy store: {count} sessions, {json_bytes / MB:.1f} MB JSON + {att_bytes / MB:.1f} MB attachments "
              f"(largest session file {max(p.stat().st_size for p in (legacy / 'sessions').iterdir()) / MB:.1f} MB); "
              f"page cache {'dropped before each step' if cold else 'NOT dropped (not root): all steps warm'}; "
              f"{os.cpu_count()} CPUs")
        print(f"store after import: {stats['stored_bytes'] / MB:.1f} MB on disk for {stats['logical_bytes'] / MB:.1f} "
              f"MB of files (dedup {stats['dedup_ratio']:.2f}x, compression {stats['compression_ratio']:.2f}x)")
        width = max(len(r["step"]) for r in results)
        print(f"{'step':<{width}}  {'seconds':>8}  {'JSON MB/s':>9}  {'all MB/s':>8}  {'sess/s':>7}  {'peak RSS':>8}")
        for r in results:
            rss = f"{r['peak_rss_mb']:.0f} MB" if r["peak_rss_mb"] else ""
            print(f"{r['step']:<{width}}  {r['seconds']:>8.2f}  {r['json_mb_per_s']:>9.1f}  "
                  f"{r['total_mb_per_s']:>8.1f}  {r['sessions_per_s']:>7.2f}  {rss:>8}  {r['note']}")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
