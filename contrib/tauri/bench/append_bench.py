"""Append blocking and time-to-durable of the TypeScript SessionStorage: on a sessionfs mount
and on a plain directory, in the same run.

    python contrib/tauri/bench/append_bench.py [--appends 200] [--interval-ms 50] [--workdir DIR]

Builds contrib/tauri in a scratch copy, mounts a fresh store, and runs bench/append-bench.ts
on the mount and on a plain directory beside it (same disk). Prints a table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench import build_reader, cli, sh  # noqa: E402  (the listing benchmark's helpers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sessionfs-append-bench-"))
    store, mnt, plain = work / "store", work / "mnt", work / "plain"
    for d in (mnt, plain / "sessions"):
        d.mkdir(parents=True, exist_ok=True)
    try:
        build = build_reader(work)
        cli("mount", str(store), str(mnt))
        try:
            out = sh("node", "dist/bench/append-bench.js", "--appends", str(args.appends), "--interval-ms",
                     str(args.interval_ms), f"mount={mnt}", f"plain={plain}", cwd=build)
        finally:
            cli("umount", str(mnt))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    print(f"appendScreenshot, {args.appends} appends of ~40 KB every {args.interval_ms} ms "
          "(+ an audio segment every third); ms p50 / p99 / max")
    print(f"{'':26} {'mount':>24} {'plain dir':>24}")
    by = {r["label"]: r for r in rows}
    for key, title in (("returnMs", "call returns"), ("queuedMs", "await append() (queued)"),
                       ("durableMs", "until durable (fsync)"), ("eventLoopDelayMs", "event loop delay")):
        cells = [f"{by[t][key]['p50']:.2f} / {by[t][key]['p99']:.2f} / {by[t][key]['max']:.1f}" for t in ("mount", "plain")]
        print(f"{title:26} {cells[0]:>24} {cells[1]:>24}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
