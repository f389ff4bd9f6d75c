"""python -m contrib.corpus OUT_DIR --count N [--seed S] [--profile P] [--no-attachments]"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import PROFILES, write_legacy_store


def _progress(done: int, total: int) -> None:
    if done == total or done % 10 == 0:
        print(f"\r{done}/{total} sessions", end="\n" if done == total else "",
              file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contrib.corpus",
                                     description="Generate a legacy session store.")
    parser.add_argument("out_dir", help="directory to create sessions/ and attachments/ in")
    parser.add_argument("--count", type=int, required=True, help="number of sessions")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--no-attachments", action="store_true",
                        help="write session JSON only")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    started = time.perf_counter()
    totals = write_legacy_store(args.out_dir, args.count, seed=args.seed,
                                profile=args.profile, attachments=not args.no_attachments,
                                progress=None if args.quiet else _progress)
    seconds = time.perf_counter() - started
    totals["seconds"] = round(seconds, 3)
    totals["sessions_per_second"] = round(args.count / seconds, 2) if seconds else None
    print(json.dumps(totals, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
