"""``sessionfs compress``: recompress cold data at a high zstd level, offline."""

from __future__ import annotations

import argparse
import json

from store.cli.common import CliError, open_store, progress_bar, write_out
from store.core.errors import LockedError
from store.services.recompress import DEFAULT_LEVEL, CompressOptions, compress


def cmd_compress(args) -> int:
    if not 1 <= args.level <= 22:
        raise CliError(f"--level {args.level}: zstd levels are 1 to 22")
    options = CompressOptions(level=args.level, cold_age=args.cold_age, dictionary=not args.no_dictionary)
    try:
        with open_store(args.store, readonly=False) as store:
            with progress_bar("compress") as update:
                result = compress(store, options, progress=update, threads=args.threads)
    except LockedError as exc:
        raise CliError(f"{exc}; a mounted store recompresses in its daemon") from None
    write_out(json.dumps(result.as_dict(), indent=2) + "\n" if args.json else result.summary() + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compress", help="recompress cold data at a high zstd level (offline)",
        description="Re-encode blocks older than --cold-age at a high zstd level, oldest first; small text blocks "
                    "also try a zstd dictionary trained from the store's own small files. Crash-safe; needs the "
                    "store unmounted (a mounted store does this in its daemon).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--level", type=int, default=DEFAULT_LEVEL, help=f"zstd level (default {DEFAULT_LEVEL})")
    p.add_argument("--cold-age", type=float, default=0.0, metavar="SECONDS",
                   help="only blocks written at least this long ago (default 0: all)")
    p.add_argument("--no-dictionary", action="store_true", help="do not train or use a dictionary")
    p.add_argument("--threads", type=int, default=None, help="encoding threads (default: one per core)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_compress)
