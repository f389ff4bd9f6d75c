"""``sessionfs gc``: reclaim unreferenced chunks and compact packs, offline."""

from __future__ import annotations

import argparse
import json

from store.cli.common import CliError, open_store, progress_bar, write_out
from store.core.errors import LockedError
from store.services.gc import DEFAULT_GRACE, DEFAULT_MAX_DEAD_AGE, GcOptions, collect


def cmd_gc(args) -> int:
    options = GcOptions(grace=args.grace, threshold=args.threshold, max_dead_age=args.max_dead_age)
    try:
        with open_store(args.store, readonly=args.dry_run) as store:
            with progress_bar("gc: compacting") as update:
                result = collect(store, options, progress=update, dry_run=args.dry_run)
    except LockedError as exc:
        raise CliError(f"{exc}; a mounted store collects garbage in its daemon (or use --dry-run)") from None
    if args.json:
        write_out(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        write_out(result.summary() + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gc", help="reclaim unreferenced chunks and compact packs",
        description="Delete chunks unreferenced for longer than the grace period, drop blocks and packs left "
                    "without data, compact packs whose live share is low or that held dead bytes too long, give "
                    "the catalog's free pages back (crash-safe at every step). Needs the store unmounted (a "
                    "mounted store does this in its daemon); --dry-run works beside a daemon.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                   help=f"reclaim chunks unreferenced for at least this long (default {DEFAULT_GRACE:.0f})")
    p.add_argument("--threshold", type=float, default=GcOptions.threshold, metavar="SHARE",
                   help="compact packs whose live share is below this (default 0.5); packs are also compacted, "
                        "emptiest first, while the dead bytes exceed 5%% of the live bytes")
    p.add_argument("--max-dead-age", type=float, default=DEFAULT_MAX_DEAD_AGE, metavar="SECONDS",
                   help="compact any pack older than this that holds a dead byte (default "
                        f"{DEFAULT_MAX_DEAD_AGE:.0f}: a day)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_gc)
