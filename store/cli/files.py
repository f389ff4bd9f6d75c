"""``sessionfs init | ls | cat | stats``: create a store, read its tree and its statistics."""

from __future__ import annotations

import argparse
import errno
import json
import os
import posixpath
import stat
import sys
import time

from store.cli.common import CliError, human_bytes, open_store, store_path, write_out
from store.core.config import make_config
from store.core.errors import FsError
from store.engine.store import Store

#: Bytes read from the store at once by ``cat``.
CAT_WINDOW = 4 * 1024 * 1024


def _type_name(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _norm(path: str) -> str:
    return "/".join(p.decode("utf-8", "surrogateescape") for p in Store.split_path(path))


def resolve_path(store: Store, path: str, *, follow: bool = True) -> int:
    """The inode of ``path`` inside the store; symlinks inside the tree are followed."""
    current = _norm(path)
    for _ in range(40):
        ino = store.resolve(current)
        if ino is None:
            raise FsError(errno.ENOENT, f"{path}: no such file or directory in the store")
        row = store.getattr(ino)
        if not (follow and stat.S_ISLNK(row.mode)):
            return ino
        target = store.readlink(ino).decode("utf-8", "surrogateescape")
        if target.startswith("/"):
            raise FsError(errno.ENOENT, f"{path}: symbolic link to {target}, outside the store")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        if joined == ".." or joined.startswith("../"):
            raise FsError(errno.ENOENT, f"{path}: symbolic link to {target}, outside the store")
        current = "" if joined == "." else joined
    raise FsError(errno.ELOOP, f"{path}: too many levels of symbolic links")


def cmd_init(args: argparse.Namespace) -> int:
    path = store_path(args.store)
    if path.exists() and not path.is_dir():
        raise CliError(f"{args.store} exists and is not a directory")
    endpoint = args.endpoint or (os.environ.get("AWS_ENDPOINT_URL") if args.objects else None)
    config = make_config(args.objects, args.catalog, endpoint)
    root = Store.init(path, config=config)
    if not config.shared:
        write_out(f"initialized an empty sessionfs store in {root.resolve()}\n")
        return 0
    joined = Store.open(root, readonly=True)
    try:
        sessions = len(joined.list_dir("sessions"))
    finally:
        joined.close()
    write_out(f"{root.resolve()} uses the store in {config.catalog} with objects in {config.objects} "
              f"({sessions} sessions); mount it with 'sessionfs mount {args.store} MOUNTPOINT'\n")
    return 0


def _entry(name: str, row, target: str | None) -> dict:
    entry = {
        "name": name,
        "type": _type_name(row.mode),
        "mode": f"{stat.S_IMODE(row.mode):04o}",
        "size": row.size,
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.mtime_ns / 1e9)),
        "mtime_ns": row.mtime_ns,
        "nlink": row.nlink,
        "ino": row.id,
    }
    if target is not None:
        entry["target"] = target
    return entry


def _list(store: Store, path: str) -> list[dict]:
    ino = resolve_path(store, path)
    row = store.getattr(ino)

    def target_of(r) -> str | None:
        return (r.target or b"").decode("utf-8", "surrogateescape") if stat.S_ISLNK(r.mode) else None

    if not stat.S_ISDIR(row.mode):       # like ls(1): a file lists as itself
        name = posixpath.basename(_norm(path)) or path
        return [_entry(name, row, target_of(row))]
    entries, after = [], 0
    while True:
        batch = store.readdir(ino, after, 1000)
        if not batch:
            break
        for _, name, child in batch:
            entries.append(_entry(name.decode("utf-8", "surrogateescape"), child, target_of(child)))
        after = batch[-1][0]
    entries.sort(key=lambda e: e["name"].encode("utf-8", "surrogateescape"))
    return entries


def _long_line(e: dict, size_width: int) -> str:
    kind = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}.get(e["type"], 0)
    mode = stat.filemode(kind | int(e["mode"], 8))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime_ns"] / 1e9))
    line = f"{mode} {e['nlink']:>3} {e['size']:>{size_width}} {when} {e['name']}"
    if "target" in e:
        line += f" -> {e['target']}"
    return line


def cmd_ls(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        entries = _list(store, args.path)
    if args.json:
        write_out(json.dumps(entries, indent=2 if args.long else None) + "\n")
    elif args.long:
        width = max((len(str(e["size"])) for e in entries), default=1)
        write_out("".join(_long_line(e, width) + "\n" for e in entries))
    else:
        write_out("".join(e["name"] + "\n" for e in entries))
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    out = getattr(sys.stdout, "buffer", None)
    with open_store(args.store) as store:
        for path in args.paths:
            ino = resolve_path(store, path)
            row = store.getattr(ino)
            if stat.S_ISDIR(row.mode):
                raise FsError(errno.EISDIR, f"{path}: is a directory")
            if not stat.S_ISREG(row.mode):
                raise FsError(errno.EINVAL, f"{path}: not a regular file")
            sys.stdout.flush()
            for off in range(0, row.size, CAT_WINDOW):
                data = store.read(ino, off, min(CAT_WINDOW, row.size - off))
                if out is not None:
                    out.write(data)
                else:
                    sys.stdout.write(data.decode("utf-8", "replace"))
                if len(data) < CAT_WINDOW:
                    break
        if out is not None:
            out.flush()
    return 0


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


def format_stats(path: str, s: dict) -> str:
    rows: list[tuple[str, str]] = [
        ("store", str(path)),
        ("files", f"{s['files']:,}"),
        ("sessions", f"{s['sessions']:,}"),
        ("logical size", f"{human_bytes(s['logical_bytes'])} ({s['logical_bytes']:,} bytes)"),
        ("data in files", f"{human_bytes(s['referenced_bytes'])} (excluding holes)"),
        ("unique data", f"{human_bytes(s['unique_bytes'])} after deduplication"),
        ("stored on disk", f"{human_bytes(s['stored_bytes'])} ({s['stored_bytes']:,} bytes) in "
                           f"{s['packs']:,} pack{'s' if s['packs'] != 1 else ''}"),
        ("dedup ratio", _ratio(s["dedup_ratio"])),
        ("compression ratio", _ratio(s["compression_ratio"])),
        ("space saving", f"{s['space_saving'] * 100:.1f}%"),
        ("garbage", f"{human_bytes(s['unreferenced_bytes'])} in unreferenced chunks"),
    ]
    cache = s.get("cache")
    if isinstance(cache, dict):
        rows.append(("cache", f"{human_bytes(cache.get('bytes_held', 0))} of "
                              f"{human_bytes(cache.get('capacity_bytes', 0))}, {cache.get('entries', 0):,} entries, "
                              f"{cache.get('hits', 0):,} hits, {cache.get('misses', 0):,} misses, "
                              f"{cache.get('evictions', 0):,} evictions (this process)"))
    queue = s.get("queue")
    if isinstance(queue, dict):
        rows.append(("queue", f"{queue.get('queued_items', 0):,} items / {human_bytes(queue.get('queued_bytes', 0))}"
                              f" waiting, {queue.get('failures', 0):,} failures"))
    else:
        rows.append(("queue", "none (store opened read-only)"))
    rows.extend(format_maintenance(s))
    search = s.get("search") or {}
    if search.get("state") == "rebuilding":
        rows.append(("search index", f"rebuilding: {search['sessions_done']:,} of {search['sessions_total']:,} "
                                     "sessions done"))
    elif search.get("state"):
        rows.append(("search index", search["state"]))
    if s.get("counted_by") == "scan":
        rows.append(("counted", "by scanning the catalog (format 1; a writable open upgrades it)"))
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k + ':':<{width + 1}} {v}\n" for k, v in rows)


def cmd_stats(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        stats = store.statistics().as_dict()
    if args.json:
        write_out(json.dumps(stats, indent=2) + "\n")
    else:
        write_out(format_stats(args.store, stats))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """This module's own subcommands."""
    p = subparsers.add_parser(
        "init", help="create an empty store, or join a shared one",
        description="Create an empty store in STORE (a new or empty directory). With --objects and --catalog, "
                    "STORE is this machine's directory (configuration, staging, cache; no secrets) of a store "
                    "kept in an S3-compatible bucket and a PostgreSQL database: created there if the database "
                    "holds none, joined if it does. S3 credentials come from AWS_ACCESS_KEY_ID, "
                    "AWS_SECRET_ACCESS_KEY (and AWS_REGION, AWS_ENDPOINT_URL), the PostgreSQL password from "
                    "PGPASSWORD or ~/.pgpass.")
    p.add_argument("store", metavar="STORE", help="directory for the new store")
    p.add_argument("--objects", metavar="s3://BUCKET/PREFIX", help="keep pack objects in this S3 location")
    p.add_argument("--catalog", metavar="postgresql://USER@HOST:PORT/DB", help="keep the catalog in this database")
    p.add_argument("--endpoint", metavar="URL", help="the S3 server's URL (default: AWS_ENDPOINT_URL, else AWS)")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser("ls", help="list a directory of the store tree",
                              description="List a directory of the store tree (read-only; safe while mounted).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("path", metavar="PATH", nargs="?", default="",
                   help="directory inside the store, e.g. 'sessions' (default: the root)")
    p.add_argument("-l", dest="long", action="store_true", help="long format: type, mode, links, size, mtime")
    p.add_argument("--json", action="store_true", help="print a JSON array of entries")
    p.set_defaults(func=cmd_ls)

    p = subparsers.add_parser("cat", help="write files' bytes to stdout",
                              description="Write the bytes of files in the store to stdout (read-only).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("paths", metavar="PATH", nargs="+", help="file inside the store")
    p.set_defaults(func=cmd_cat)

    p = subparsers.add_parser("stats", help="sizes, dedup and compression ratios, cache counters",
                              description="Show logical vs stored bytes, dedup and compression ratios, space "
                                          "saving, files, sessions, packs and cache counters (read-only).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="print the full statistics as JSON")
    p.set_defaults(func=cmd_stats)


def format_maintenance(stats: dict) -> list[tuple[str, str]]:
    """Rows for ``sessionfs stats`` (``cli.format_stats``) from ``statistics().as_dict()``."""
    m = stats.get("maintenance")
    if not isinstance(m, dict):
        return []
    rows = [("recompressed", f"{m['recompressed_blocks']:,} blocks, {human_bytes(m['recompress_bytes_before'])} -> "
                             f"{human_bytes(m['recompress_bytes_after'])}; {m['blocks_pending']:,} blocks "
                             f"({human_bytes(m['bytes_pending'])}) not yet"),
            ("dictionaries", f"{m['dictionaries']} ({human_bytes(m['dictionary_bytes'])})"),
            ("dead pack bytes", f"{human_bytes(m['dead_pack_bytes'])} (gc compaction reclaims them)")]
    if m.get("lost_files"):
        rows.append(("lost+found", f"{m['lost_files']} files with lost data (sessionfs verify lists them)"))
    bg = m.get("background") or {}
    if bg.get("compressor"):
        c = bg["compressor"]
        rows.append(("compressor", f"{c['state']}, level {c['level']}, {c['blocks']:,} blocks handled in this run"))
    if bg.get("gc"):
        g = bg["gc"]
        rows.append(("background gc", f"{g['passes']} passes, {g['chunks_reclaimed']:,} chunks reclaimed, "
                                      f"{g['packs_compacted']} packs compacted in this run"))
    return rows
