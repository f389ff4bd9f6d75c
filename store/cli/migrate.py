"""``sessionfs import | export | migrate-status | migrate-finalize``.

Exit status: 0 success; 1 an error stopped the command (one line on stderr); 3 the
command finished but some sessions failed (listed, and in ``--report``/``--json``);
130 interrupted (Ctrl-C; run the same import again to continue).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from store.cli.common import CliError, human_bytes, open_store, write_out
from store.core.errors import LockedError
from store.core.legacy import Limits
from store.core.units import parse_size
from store.services.migrate import Migrator, Outcome
from store.services.migrate_status import finalize, migration_status, parse_duration
from store.services.migrate_export import export_sessions

#: Block cache of the store while importing: verification reads each block once, so a big cache only costs RSS.
IMPORT_CACHE_BYTES = 32 * 1024 * 1024
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130

def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return n


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def _write_json_file(path: str, value: dict) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, target)


# -- import ----------------------------------------------------------------------------------
def _is_mount(path: Path) -> bool:
    return (path / ".sessionfs" / "stats.json").is_file() and not (path / "catalog.db").exists()


def cmd_import(args: argparse.Namespace) -> int:
    legacy_dir = Path(args.legacy_dir)
    if not (legacy_dir / "sessions").is_dir():
        raise CliError(f"{args.legacy_dir}: not a legacy store (no sessions/ directory)")
    if args.report and _inside(Path(args.report), legacy_dir):
        raise CliError(f"--report {args.report}: must not be inside LEGACY_DIR (import never writes there)")
    if _is_mount(Path(args.store)):
        return _import_via_mount(args)
    limits = Limits(max_file_bytes=args.max_file_size, max_string_chars=args.max_string,
                    max_attachment_bytes=args.max_attachment_size)
    try:
        ctx = open_store(args.store, readonly=False, cache_bytes=IMPORT_CACHE_BYTES)
        store = ctx.__enter__()
    except LockedError as exc:
        raise CliError(f"{exc}; to import into a mounted store, give the mountpoint as STORE "
                       "(files go through its import/ directory)") from None
    interrupted = False
    failed: list[Outcome] = []
    try:
        migrator = Migrator(store, limits=limits, batch=args.batch)
        bar = None
        counts = {"imported": 0, "skipped": 0, "failed": 0}

        def on_start(files: int, nbytes: int) -> None:
            nonlocal bar
            if args.progress:
                from tqdm import tqdm
                bar = tqdm(total=nbytes, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                           desc=f"0/{files} sessions", file=sys.stderr, disable=None, smoothing=0.1)
            bar_files[0] = files

        bar_files = [0]

        def on_outcome(o: Outcome) -> None:
            counts[o.status] += 1
            if o.status == "failed":
                failed.append(o)
            if bar is not None:
                done = sum(counts.values())
                bar.set_description_str(f"{done}/{bar_files[0]} sessions", refresh=False)
                bar.set_postfix_str(f"{counts['imported']} new, {counts['skipped']} done before, "
                                    f"{counts['failed']} failed", refresh=False)
                bar.update(o.size)

        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            # first Ctrl-C: stop after the sessions in flight (they are verified); second: now
            nonlocal interrupted
            interrupted = True
            migrator.cancel()
            signal.signal(signal.SIGINT, previous)
            print("\nsessionfs: stopping after the sessions in flight (Ctrl-C again to stop now)",
                  file=sys.stderr)

        signal.signal(signal.SIGINT, on_sigint)
        try:
            report = migrator.import_dir(legacy_dir, jobs=args.jobs, on_start=on_start, on_outcome=on_outcome)
        finally:
            signal.signal(signal.SIGINT, previous)
            if bar is not None:
                bar.close()
    finally:
        ctx.__exit__(None, None, None)
    data = report.as_dict()
    if args.report:
        _write_json_file(args.report, data)
    t = data["totals"]
    lines = [f"imported {t['imported']} sessions ({human_bytes(t['imported_bytes'])} of legacy JSON) in "
             f"{t['seconds']:.1f} s: {t['imported_mb_per_second']:.1f} MB/s, "
             f"{t['imported_sessions_per_second']:.1f} sessions/s; "
             f"{t['skipped']} already imported; {t['failed']} failed"]
    if report.interrupted:
        lines.append("interrupted: run the same command again to continue where it stopped")
    if report.attachments_not_imported:
        lines.append(f"{len(report.attachments_not_imported)} attachment files are used by no imported session "
                     "(orphans, or used only by failed sessions)")
    if failed:
        lines.append("failed:")
        lines.extend(f"  {o.source}: [{o.stage}] {o.reason}" for o in failed)
    write_out("\n".join(lines) + "\n")
    if report.interrupted or interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else 0


def _import_via_mount(args: argparse.Namespace) -> int:
    """Copy the legacy files into MOUNT/import/ (attachments first); the daemon migrates them in
    the background. Unless --no-wait, wait until every copied file was imported (the mount
    removes it) or failed (``<name>.json.error`` appears), showing .sessionfs/stats.json progress."""
    import shutil
    mount = Path(args.store)
    target = mount / "import"
    legacy_dir = Path(args.legacy_dir)
    if not target.is_dir():
        raise CliError(f"{mount}: this mount has no import/ directory; stop it and import into the store")
    try:
        (target / "attachments").mkdir(exist_ok=True)
        attachments = legacy_dir / "attachments"
        if attachments.is_dir():
            for entry in sorted(os.scandir(attachments), key=lambda e: e.name):
                if entry.is_file() and not entry.name.startswith("."):
                    shutil.copyfile(entry.path, target / "attachments" / entry.name)
        copied = []
        for entry in sorted(os.scandir(legacy_dir / "sessions"), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith(".json") and not entry.name.startswith("."):
                stale = target / (entry.name + ".error")
                if stale.exists():
                    stale.unlink()
                shutil.copyfile(entry.path, target / entry.name)
                copied.append(entry.name)
    except OSError as exc:
        raise CliError(f"{target}: cannot copy into the mount's import/ directory: "
                       f"{exc.strerror or exc}") from None
    write_out(f"copied {len(copied)} session files into {target}; the mount imports them in the background\n")
    if args.no_wait:
        return 0
    stats = mount / ".sessionfs" / "stats.json"
    last_change, last_left = time.monotonic(), None
    while True:
        left = [n for n in copied if (target / n).exists() and not (target / (n + ".error")).exists()]
        if not left:
            break
        try:
            progress = json.loads(stats.read_text()).get("migration")
        except (OSError, ValueError):
            progress = None
        if len(left) != last_left:
            last_change, last_left = time.monotonic(), len(left)
        elif progress is None and time.monotonic() - last_change > 30:
            raise CliError(f"{mount}: nothing was imported for 30 s and its stats.json has no 'migration' "
                           "progress; does this mount import in the background?")
        if progress and args.progress:
            print(f"\r{progress.get('sessions_done', 0)}/{progress.get('sessions_total', 0)} sessions, "
                  f"{progress.get('failed', 0)} failed", end="", file=sys.stderr, flush=True)
        time.sleep(0.5)
    failed = [n for n in copied if (target / (n + ".error")).exists()]
    write_out(f"done: {len(copied) - len(failed)} imported, {len(failed)} failed\n")
    for name in failed:
        reason = (target / (name + ".error")).read_text().strip()
        write_out(f"  {target / name}: {reason}\n")
    return EXIT_SOME_FAILED if failed else 0


# -- export --------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        result = export_sessions(store, args.outdir, args.session or None, legacy=args.legacy,
                                 overwrite=args.overwrite)
    if args.json:
        write_out(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        fmt = "legacy" if args.legacy else "chunked layout"
        lines = [f"exported {len(result.sessions)} sessions ({fmt}) to {args.outdir}: {result.files} files, "
                 f"{human_bytes(result.bytes)}" + (f"; {result.unchanged} already identical" if result.unchanged
                                                   else "")]
        lines.extend(f"  {e['session']}: {e['reason']}" for e in result.errors)
        write_out("\n".join(lines) + "\n")
    return EXIT_SOME_FAILED if result.errors else 0


# -- migrate-status -------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        status = migration_status(store, rehash=not args.no_rehash, attachments=not args.no_attachments)
    if args.json:
        write_out(json.dumps(status, indent=2) + "\n")
        return 0
    c = status["counts"]
    if not status["records"]:
        write_out("no legacy session has been imported into this store\n")
        return 0
    lines = [f"{status['records']} legacy files seen: {c['verified']} imported and verified, "
             f"{c['finalized']} finalized (original deleted), {c['imported']} imported awaiting verification, "
             f"{c['failed']} failed"]
    originals = status["originals"]
    if originals:
        lines.append("originals: " + ", ".join(f"{n} {state}" for state, n in sorted(originals.items())))
    for s in status["sessions"]:
        if s["original"] not in ("identical", "deleted", "in-store", "not checked"):
            lines.append(f"  {s['source']}: original {s['original']}")
        if not s["session_in_store"]:
            lines.append(f"  {s['source']}: session {s['session_id']} is no longer in the store (deleted after "
                         "import; a new import skips it)")
        for path in s["attachments_changed"]:
            lines.append(f"  {path}: attachment original changed")
        for path in s["attachments_missing"]:
            lines.append(f"  {path}: attachment original missing")
    if status["failed"]:
        lines.append("failed:")
        lines.extend(f"  {r['source']}: [{r['stage']}] {r['reason']}" for r in status["failed"])
    write_out("\n".join(lines) + "\n")
    return 0


# -- migrate-finalize -------------------------------------------------------------------------------
def cmd_finalize(args: argparse.Namespace) -> int:
    try:
        seconds = parse_duration(args.older_than)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with open_store(args.store, readonly=args.dry_run) as store:
        result = finalize(store, seconds, dry_run=args.dry_run, keep_attachments=args.keep_attachments)
    if args.json:
        write_out(json.dumps(result.as_dict(), indent=2) + "\n")
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    lines = [f"{verb} {len(result.deleted)} original files"]
    lines.extend(f"  {path}" for path in result.deleted)
    kept = [k for k in result.kept if k["reason"] != "imported too recently"]
    recent = len(result.kept) - len(kept)
    if recent:
        lines.append(f"kept {recent} imported less than {args.older_than} ago")
    if kept:
        lines.append("kept:")
        lines.extend(f"  {k['source']}: {k['reason']}" for k in kept)
    write_out("\n".join(lines) + "\n")
    return 0


# -- registration ------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import", help="import a legacy session store (resumable, verified)",
        description="Split every LEGACY_DIR/sessions/*.json into the chunked layout with its attachments, "
                    "one atomic commit per session, verify each by exporting it back, and record it. "
                    "Resumable: run it again after Ctrl-C or a crash. LEGACY_DIR is only read. "
                    "Exit status 3 when some sessions failed (listed, with reasons).")
    p.add_argument("store", metavar="STORE", help="the store (or a sessionfs mountpoint: files go through import/)")
    p.add_argument("legacy_dir", metavar="LEGACY_DIR", help="legacy store with sessions/ and attachments/")
    p.add_argument("--batch", type=_positive, default=16, metavar="N",
                   help="sessions queued, committed and verified together (default 16)")
    p.add_argument("--jobs", type=_positive, default=1, metavar="N",
                   help="processes parsing and splitting ahead; writes stay in order (default 1)")
    p.add_argument("--report", metavar="FILE", help="write a machine-readable JSON report here")
    p.add_argument("--max-file-size", type=parse_size, default=Limits.max_file_bytes, metavar="SIZE",
                   help="larger legacy files fail (default 1G)")
    p.add_argument("--max-string", type=parse_size, default=Limits.max_string_chars, metavar="N",
                   help="a JSON string longer than N characters fails its session (default 16M)")
    p.add_argument("--max-attachment-size", type=parse_size, default=Limits.max_attachment_bytes,
                   metavar="SIZE", help="larger attachments fail their session (default 4G)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--no-wait", action="store_true", help="(mountpoint) return once the files are copied")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser(
        "export", help="export sessions as legacy files (rollback) or as the plain layout",
        description="Write sessions out of the store (read-only; works while mounted). With --legacy: "
                    "OUTDIR/sessions/<id>.json and OUTDIR/attachments/<attachment-id>.<ext>; without: "
                    "OUTDIR/sessions/<id>/... as plain files.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--session", action="append", metavar="ID", help="only this session (repeatable)")
    p.add_argument("--legacy", action="store_true", help="monolithic legacy format")
    p.add_argument("--overwrite", action="store_true", help="replace existing files with other content")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "migrate-status", help="what was imported, what failed, are the originals unchanged",
        description="List the migration record: imported, failed (with reasons), finalized; re-hash each "
                    "original to say whether it is still identical (read-only; works while mounted).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-rehash", action="store_true", help="do not read the originals")
    p.add_argument("--no-attachments", action="store_true", help="re-hash session files only")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser(
        "migrate-finalize", help="delete originals imported long enough ago, after re-verifying them",
        description="Delete legacy originals (session files, and attachments no remaining legacy file "
                    "mentions) whose import is older than --older-than, each only after re-verifying it "
                    "against the record and the store's export. Lists what it deleted; never deletes "
                    "anything else.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 0s")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument("--keep-attachments", action="store_true", help="delete session files only")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_finalize)


__all__ = ["register"]
