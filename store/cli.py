"""The ``sessionfs`` command line.

Subcommands live in modules that each provide ``register(subparsers)``: it
adds its parsers with ``subparsers.add_parser(...)`` and binds a handler with
``parser.set_defaults(func=handler)``, where ``handler(args) -> int`` returns
the exit status. ``main`` registers this module's own commands first, then
every module named in ``EXTENSIONS`` that can be imported (``fusefs.cli``
adds ``mount`` and ``umount``). Handlers raise ``StoreError`` / ``OSError``
for failures; ``main`` turns those into one line ``sessionfs: <message>`` on
stderr and exit status 1 (argparse's usage errors exit 2). No traceback ever
reaches the user unless ``--log-level debug`` is given.

Commands that only read (``ls``, ``cat``, ``stats``) open the store
read-only: they never take the write lock, so they work beside a mounted
daemon and never block it. A read-only open sees what is committed in the
catalog; writes still queued or staged in a running daemon are not visible.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import posixpath
import sqlite3
import stat
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from .engine import Store
from .errors import FsError, StoreError

PROG = "sessionfs"

#: Modules whose ``register(subparsers)`` adds more subcommands; skipped when not importable.
EXTENSIONS: list[str] = ["fusefs.cli", "store.migrate_cli", "store.verify", "store.gc", "store.recompress", "store.search"]

#: Extra ``register(subparsers)`` callables (for embedding and tests); called after EXTENSIONS.
REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = []

#: Bytes read from the store at once by ``cat``.
CAT_WINDOW = 4 * 1024 * 1024

#: Exit status after the reader of our stdout went away (as a shell reports a SIGPIPE death).
EXIT_BROKEN_PIPE = 128 + 13

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

log = logging.getLogger("sessionfs.cli")


class CliError(StoreError):
    """A failure the CLI itself detects; printed like any store error."""


# -- output helpers ------------------------------------------------------------------
def write_out(text: str) -> None:
    """Write text to stdout; names that are not UTF-8 go out as their original bytes."""
    data = text.encode("utf-8", "surrogateescape")
    buf = getattr(sys.stdout, "buffer", None)
    if buf is None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        return
    sys.stdout.flush()
    buf.write(data)


def human_bytes(n: int | float) -> str:
    """1536 -> '1.5 KiB'; binary units up to PiB."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    n = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def error_message(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, OSError) and not isinstance(exc, StoreError):
        text = exc.strerror or str(exc)
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
        return text
    if isinstance(exc, sqlite3.Error):
        return f"catalog error: {exc}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())   # one line, whatever the message held


# -- opening stores --------------------------------------------------------------------
def store_path(arg: str) -> Path:
    """The store directory named by a STORE argument (a mountpoint is not resolved yet)."""
    return Path(arg)


@contextlib.contextmanager
def open_store(arg: str, *, readonly: bool = True, **kwargs) -> Iterator[Store]:
    """Open the store named on the command line; read-only unless asked otherwise."""
    path = store_path(arg)
    if not path.exists():
        raise CliError(f"{arg}: no such store (the directory does not exist); create one with 'sessionfs init'")
    if not path.is_dir():
        raise CliError(f"{arg}: not a directory, so not a sessionfs store")
    try:
        store = Store.open(path, readonly=readonly, **kwargs)
    except sqlite3.Error as exc:
        hint = "; is this a sessionfs store?" if "not a database" in str(exc) else ""
        if readonly and "readonly" in str(exc):
            hint = ("; reading a store needs write access to its directory (SQLite creates "
                    "catalog.db-shm and catalog.db-wal there)")
        raise CliError(f"{arg}: cannot open the catalog: {exc}{hint}") from exc
    try:
        yield store
    finally:
        store.close()


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


# -- init ----------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    path = store_path(args.store)
    if path.exists() and not path.is_dir():
        raise CliError(f"{args.store} exists and is not a directory")
    root = Store.init(path)
    write_out(f"initialized an empty sessionfs store in {root.resolve()}\n")
    return 0


# -- ls ------------------------------------------------------------------------------
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


# -- cat -----------------------------------------------------------------------------
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


# -- stats ---------------------------------------------------------------------------
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
    from .recompress import format_maintenance
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


# -- registration --------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    """This module's own subcommands."""
    p = subparsers.add_parser("init", help="create an empty store",
                              description="Create an empty store in STORE (a new or empty directory).")
    p.add_argument("store", metavar="STORE", help="directory for the new store")
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


def _add_log_level(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=default,
                        help="log messages from this level up (default: warning)")


class _SubcommandParser(argparse.ArgumentParser):
    """Every subcommand also accepts the global --log-level (after the subcommand name)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _add_log_level(self, argparse.SUPPRESS)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("sessionfs")
    except Exception:  # noqa: BLE001 - not installed: run from a checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="A deduplicating, crash-safe store and FUSE filesystem for recorded work sessions.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    _add_log_level(parser, "warning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    register(sub)
    unavailable = []
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                log.debug("%s is not installed; its commands are not offered", name)
            else:
                unavailable.append(f"{name}: {exc}")
            continue
        register_fn = getattr(module, "register", None)
        if register_fn is None:
            unavailable.append(f"{name}: no register(subparsers) function")
            continue
        register_fn(sub)
    for fn in REGISTRARS:
        fn(sub)
    if unavailable:
        parser.epilog = "unavailable commands: " + "; ".join(unavailable)
    return parser


def _configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(numeric)


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:      # --help, --version, usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _configure_logging(args.log_level)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required (try '{PROG} --help')", file=sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (StoreError, OSError, sqlite3.Error) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        log.debug("command failed", exc_info=True)
        print(f"{PROG}: {error_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
