"""``sessionfs verify [--data] [--repair]``: print the report, repair on request."""

from __future__ import annotations

import json
import logging
from typing import Callable

from store.cli.common import CliError, open_store, progress_bar, store_path, write_out
from store.core.errors import FormatError, LockedError
from store.engine.store import Store
from store.backends.objects.packs import pack_name
from store.services.repair import repair
from store.services.verify import verify
from store.services.verify_report import Report, merge_plans, ranges_text


def _print_report(report: Report, out: Callable[[str], None], heading: str | None = None) -> None:
    if heading:
        out(heading + "\n")
    for p in report.problems:
        out(p.line() + "\n")
    for entry in report.lost:
        out(f"lost+found: {entry['current_path']}: bytes {ranges_text([tuple(r) for r in entry['lost_ranges']])} "
            f"lost ({entry['reason']})\n")
    out(report.summary() + "\n")


def cmd_verify(args) -> int:
    engine_log = logging.getLogger("sessionfs.store")
    saved = engine_log.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Reading damaged data makes the engine log each failure; the report names them all.
        engine_log.setLevel(logging.CRITICAL)
    try:
        return _verify_command(args)
    finally:
        engine_log.setLevel(saved)


def _verify_command(args) -> int:
    def run(store, desc: str) -> Report:
        with progress_bar(desc) as update:
            return verify(store, data=args.data, progress=update)

    try:
        with open_store(args.store) as store:
            before = run(store, "verify")
    except FormatError as exc:
        if args.json:
            write_out(json.dumps({"ok": False, "problems": [{"kind": "format", "message": str(exc)}]}) + "\n")
        else:
            write_out(f"error: format: {exc}\n1 error\n")
        return 1
    result = {"before": before.as_dict()}
    if not args.json:
        _print_report(before, write_out)
    if not args.repair:
        if args.json:
            write_out(json.dumps(before.as_dict(), indent=2) + "\n")
        return 0 if before.ok else 1
    if not before.repairable:
        if args.json:
            result["repairs"] = []
            write_out(json.dumps(result, indent=2) + "\n")
        else:
            write_out("nothing that --repair can fix\n")
        return 0 if before.ok else 1
    try:
        store = Store.open(store_path(args.store))
    except LockedError as exc:
        raise CliError(f"refusing to repair: {exc}") from None
    actions = []
    with store:
        for pid in before.orphan_packs:
            if store.packs.size(pid) is None:
                actions.append(f"deleted orphan pack {pack_name(pid)} (when the store was opened)")
        plan = run(store, "verify (for repair)")
        merge_plans(plan, before)
        actions += repair(store, plan)
        store.flush()
        after = run(store, "verify (after repair)")
    if args.json:
        result.update(repairs=actions, after=after.as_dict())
        write_out(json.dumps(result, indent=2) + "\n")
    else:
        write_out("".join(f"repaired: {a}\n" for a in actions) or "repaired: nothing\n")
        _print_report(after, write_out, "after repair:")
    return 0 if after.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="check the catalog against the packs; --repair fixes what needs no guessing",
        description="Check the format version, every pack, block and chunk location, reference and link count, "
                    "the session index, and (--data) decode every block, hash every chunk and parse every session "
                    "JSON file. Prints one line per problem naming the files affected, then a summary; exits 1 "
                    "when there is an error. Read-only (safe while mounted) unless --repair.")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--data", action="store_true", help="read, decode and hash all data (slow)")
    p.add_argument("--repair", action="store_true",
                   help="fix what needs no guessing (recount references and links, drop orphans and dangling "
                        "entries, rebuild the session index, record files with lost data in lost+found), say what "
                        "was done and verify again; refused while the store is mounted")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)
