"""``sessionfs search`` and ``sessionfs reindex``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
from tqdm import tqdm

from store.backends.catalog.search import REBUILDING
from store.cli.common import open_store, write_out
from store.services.search import search


def store_of(arg: str) -> str:
    """The store directory for a STORE or MOUNTPOINT argument."""
    stats = Path(arg) / ".sessionfs" / "stats.json"
    try:
        info = orjson.loads(stats.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return arg
    return info.get("store") or arg if isinstance(info, dict) else arg


def cmd_search(args) -> int:
    with open_store(store_of(args.store)) as store:
        index = store.text_index.statistics()       # before searching: "ok" means complete
        results = search(store, args.query, tags=args.tag, status=args.status, after=args.after,
                         before=args.before, topic=args.topic, limit=args.limit)
        names = {}
        if results:
            names = store.catalog.reader().sessions.names(r.session_id for r in results)
    rebuilding = None
    if index.state == REBUILDING:
        rebuilding = {"sessions_done": index.sessions_done, "sessions_total": index.sessions_total}
        print(f"note: the search index is being rebuilt ({index.sessions_done:,} of {index.sessions_total:,} "
              "sessions done); results may be incomplete until it finishes", file=sys.stderr)
    if args.json:
        write_out(json.dumps([{**r.as_dict(), "name": names.get(r.session_id), "index_rebuilding": rebuilding}
                              for r in results], indent=2, ensure_ascii=False) + "\n")
        return 0
    if not results:
        print("no matching sessions", file=sys.stderr)
        return 0
    lines = []
    for r in results:
        lines.append(f"{r.score:8.3f}  {r.session_id}  {names.get(r.session_id) or ''}".rstrip())
        if r.file or r.snippet:
            lines.append(f"          {r.file}  {r.snippet}".rstrip())
    write_out("\n".join(lines) + "\n")
    return 0


def cmd_reindex(args) -> int:
    if args.check:
        with open_store(args.store) as store:       # read-only: works beside a mount, changes nothing
            problem = store.text_index.check(store.catalog.reader(), full=True)
        write_out(f"search index: {problem or 'ok'}\n")
        return 1 if problem else 0
    with open_store(args.store, readonly=False) as store:
        sessions = len(store.text_index.session_dirs(store.catalog.reader()))
        with tqdm(total=sessions, unit="session", desc="reindex", file=sys.stderr) as bar:
            report = store.text_index.rebuild(bar.update)
    write_out(f"search index rebuilt: {report.files} files of {report.sessions} sessions in "
              f"{report.seconds:.1f} s\n")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="find sessions by words, phrases, tags, status and dates",
        description="Search the sessions of STORE (or of the store mounted at MOUNTPOINT) read-only. "
                    "QUERY: words (all must occur), \"phrases\", prefix*, a OR b, -excluded; "
                    "matched case-insensitively as whole words.")
    p.add_argument("store", metavar="STORE|MOUNTPOINT")
    p.add_argument("query", metavar="QUERY", nargs="?", default="",
                   help="what to search for (may be empty when a filter is given); a query that "
                        "starts with '-' goes after --")
    p.add_argument("--tag", action="append", help="only sessions with this tag (repeat: all of them)")
    p.add_argument("--status", action="append", help="only sessions with this status (repeat: any of them)")
    p.add_argument("--after", help="only sessions started on or after this date (YYYY-MM-DD) or time")
    p.add_argument("--before", help="only sessions started on or before this date (YYYY-MM-DD) or time")
    p.add_argument("--topic", action="append", help="only sessions with this topic id (repeat: all of them)")
    p.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    p.add_argument("--json", action="store_true", help="print a JSON array of results")
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser(
        "reindex", help="rebuild the search index from the files",
        description="Rebuild the full-text search index of STORE from its files, with a progress bar. "
                    "Needs the store unmounted (it takes the write lock).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--check", action="store_true",
                   help="only check the index (read-only, FTS5 integrity-check); exit status 1 if unusable")
    p.set_defaults(func=cmd_reindex)
