"""listAllMetadata() over N sessions through Node: on a sessionfs mount vs the same files in a plain directory.

    python contrib/tauri/bench/bench.py [--sessions 1000] [--runs 10] [--workdir DIR]

1. Generates N small json-only sessions (contrib.corpus, profile "small") and writes
   them with ``store.sessions.SessionStore.save_full_session`` into a fresh store.
2. Mounts the store (``sessionfs mount``), copies ``sessions/`` to a plain directory.
3. Builds contrib/tauri in a scratch copy (``npm ci``, ``tsc``) and runs
   bench/list-bench.ts: the first call (cold: fresh mount, empty caches) and the
   median of ``--runs`` more, with 16 reads in flight and with 1 (sequential, like
   one Tauri IPC call at a time). Then remounts for a second cold run.
Also times the Rust reader's ``list`` when rustc is there. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from contrib.corpus import generate_session  # noqa: E402
from store.engine.store import Store  # noqa: E402
from store.services.sessions import SessionStore  # noqa: E402

TAURI = ROOT / "contrib" / "tauri"


def _generate(args: tuple[int, int]) -> dict:
    seed, index = args
    return generate_session(seed, index, profile="small", attachments=False)[0]


def sh(*cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def cli(*args: str) -> str:
    return sh(sys.executable, "-m", "store.cli", *args, cwd=ROOT)


def build_reader(work: Path) -> Path:
    build = work / "tauri"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(TAURI, build, ignore=shutil.ignore_patterns("node_modules", "dist"))
    sh("npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", cwd=build)
    sh("node", str(build / "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", cwd=build)
    return build


def node_bench(build: Path, runs: int, concurrency: int, **targets: Path) -> list[dict]:
    out = sh("node", "dist/bench/list-bench.js", "--runs", str(runs), "--concurrency", str(concurrency),
             *(f"{label}={path}" for label, path in targets.items()), cwd=build)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep everything here; a store already there is reused (default: a temporary directory)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sessionfs-list-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store_dir, mnt, plain = work / "store", work / "mnt", work / "plain"
    mnt.mkdir(exist_ok=True)
    results: dict = {"sessions": args.sessions, "runs": args.runs}
    try:
        if (store_dir / "catalog.db").exists():
            print(f"reusing the store in {store_dir}", file=sys.stderr)
        else:
            t = time.perf_counter()
            with multiprocessing.Pool() as pool:
                sessions = pool.map(_generate, [(args.seed, i) for i in range(args.sessions)], chunksize=8)
            results["generate_s"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            store = Store.open(store_dir, create=True)
            try:
                api = SessionStore(store)
                for session in sessions:
                    api.save_full_session(session)
                store.flush()
            finally:
                store.close()
            results["save_full_session_s"] = round(time.perf_counter() - t, 1)
        build = build_reader(work)

        cli("mount", str(store_dir), str(mnt))
        try:
            cold = node_bench(build, args.runs, 16, mount=mnt)
            shutil.rmtree(plain, ignore_errors=True)
            shutil.copytree(mnt / "sessions", plain / "sessions")
            meta_bytes = sum(p.stat().st_size for p in (plain / "sessions").glob("*/metadata.json"))
            results["metadata_bytes_avg"] = meta_bytes // max(1, args.sessions)
            warm16 = node_bench(build, args.runs, 16, mount=mnt, plain=plain)
            seq = node_bench(build, args.runs, 1, mount=mnt, plain=plain)
            rust = None
            if shutil.which("rustc"):
                exe = work / "sessionfs-reader"
                sh("rustc", "-O", "--edition", "2021", "-o", str(exe), str(ROOT / "contrib/rust-reader/src/main.rs"))
                rust = {}
                for label, path in (("mount", mnt), ("plain", plain)):
                    times = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        sh(str(exe), "list", str(path))
                        times.append((time.perf_counter() - t) * 1000)
                    rust[label] = round(sorted(times)[len(times) // 2], 1)
        finally:
            cli("umount", str(mnt))
        cli("mount", str(store_dir), str(mnt))
        try:
            cold2 = node_bench(build, args.runs, 16, mount=mnt)
        finally:
            cli("umount", str(mnt))
        results.update(cold_mount=cold[0], cold_mount_after_remount=cold2[0], concurrency16=warm16,
                       sequential=seq, rust_list_median_ms=rust)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    by = {(r["label"], r["concurrency"]): r for r in results["concurrency16"] + results["sequential"]}
    print(f"listAllMetadata() over {args.sessions} sessions (median of {args.runs} warm runs; first = cold)")
    print(f"{'':28} {'mount':>10} {'plain dir':>10}")
    for c in (16, 1):
        m, p = by[("mount", c)], by[("plain", c)]
        print(f"{f'warm, {c} in flight':28} {m['medianMs']:>8.1f}ms {p['medianMs']:>8.1f}ms")
    print(f"{'first call after mount':28} {results['cold_mount']['firstMs']:>8.1f}ms")
    print(f"{'first call after remount':28} {results['cold_mount_after_remount']['firstMs']:>8.1f}ms")
    if results["rust_list_median_ms"]:
        r = results["rust_list_median_ms"]
        print(f"{'rust list (process, median)':28} {r['mount']:>8.1f}ms {r['plain']:>8.1f}ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
