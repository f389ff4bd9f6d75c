"""``verify --repair``: fix what needs no guessing, in one durable transaction (see
``store.services.verify`` for what is repaired and what is not)."""

from __future__ import annotations

import time

from store.backends.catalog.audit import Audit
from store.backends.objects.packs import pack_name
from store.services.verify_report import Report, merge_ranges, ranges_text


class _LostFiles:
    """The files losing data in this repair: ino -> byte ranges and reasons."""

    def __init__(self):
        self.files: dict[int, dict] = {}

    def note(self, ino: int, start: int, end: int, reason: str) -> None:
        entry = self.files.setdefault(ino, {"ranges": [], "reasons": []})
        entry["ranges"].append((start, end))
        if reason not in entry["reasons"]:
            entry["reasons"].append(reason)


def repair(store, report: Report) -> list[str]:
    """Fix what ``report`` found that needs no guessing; returns what was done, one line each.

    Runs in the persistence worker (``Store.run_in_worker``): it changes chunks, blocks and
    packs. ``report`` must come from a pass over this same open store.
    """
    if store.persister is not None and not store.persister.in_worker():
        return store.run_in_worker(lambda: repair(store, report))
    actions: list[str] = []
    now = time.time_ns()
    with store.catalog.write(durable=True) as db:
        audit = db.audit
        # 1. References of inodes that do not exist or are not files.
        for ino in report.orphan_file_chunks:
            n = audit.drop_references(ino)
            actions.append(f"dropped {n} chunk references of inode {ino} (not a file)")
        # 2. Data that is gone: lost chunks (reads fail), files recorded in lost+found.
        lost = _LostFiles()
        _mark_lost_data(store, db, report, lost, actions, now)
        dropped_blocks = [bid for bid in report.bad_blocks if audit.drop_block(bid)]
        if dropped_blocks:
            actions.append(f"dropped {len(dropped_blocks)} unreadable block(s) from the catalog")
        for pid in report.missing_packs:
            if audit.drop_pack(pid):
                actions.append(f"dropped missing pack {pid:08d} from the catalog")
        for pid, fsize in report.truncated_packs.items():
            audit.shrink_pack(pid, fsize)
            actions.append(f"set the size of truncated pack {pid:08d} to its {fsize} bytes stored")
        for ino, entry in sorted(lost.files.items()):
            ranges = merge_ranges(entry["ranges"])
            path = store.catalog.path_of(ino, db)
            reason = "; ".join(entry["reasons"])
            audit.record_lost_found(ino, path, reason, ranges, now)
            actions.append(f"moved {path or f'inode {ino}'} to lost+found: bytes {ranges_text(ranges)} are lost "
                           f"({reason}); reading them fails, the rest of the file reads")
        # 3. Namespace.
        for parent, name in report.dangling:
            audit.drop_entry(parent, name)
            actions.append(f"dropped the dangling entry {name.decode('utf-8', 'surrogateescape')!r} "
                           f"in directory inode {parent}")
        # 4. Counts (after the changes above).
        fixed = audit.recount_refcounts(now)
        if fixed:
            actions.append(f"recounted the references of {fixed} chunk(s)")
        nl = audit.recount_nlinks([ino for ino, _ in report.nlinks] + [p for p, _ in report.dangling])
        if nl:
            actions.append(f"recounted the link counts of {nl} inode(s)")
        # 5. The session index.
        for sid in report.stale_sessions:
            audit.drop_session_rows(sid)
            actions.append(f"deleted the session index row of {sid} (no such session directory)")
        for dir_ino in sorted(report.session_dirs):
            db.sessions.refresh(dir_ino, store.sessions_ino, lambda i: store.read_file_in(db, i))
            actions.append(f"rebuilt the session index row of {store.catalog.path_of(dir_ino, db)}")
        # 6. lost+found entries that no longer apply (file rewritten or deleted).
        stale = audit.prune_lost_found()
        if stale:
            actions.append(f"pruned {stale} lost+found entr{'ies' if stale != 1 else 'y'} of files since "
                           "rewritten or deleted")
        # 7. The totals (last: the changes above kept them in step, a recount sets any drift right).
        if report.counters:
            audit.store_recounted_totals()
            actions.append("stored the recounted totals (counters)")
    # After the commit: caches and files.
    if dropped_blocks or report.bad_chunks:
        store.maintenance_epoch += 1
        store.cache.clear()             # decoded blocks of data now marked lost
    for pid in report.orphan_packs:
        if store.packs.size(pid) is not None and not store.catalog.reader().audit.pack_listed(pid):
            store.packs.delete(pid)
            actions.append(f"deleted orphan pack {pack_name(pid)}")
    return actions


def _mark_lost_data(store, db, report: Report, lost: _LostFiles, actions: list[str], now: int) -> None:
    """Chunks that are missing or unreadable become lost chunks; ``lost`` notes the files and
    ranges that lose data."""
    audit: Audit = db.audit
    for ino, off, cid, length in report.missing_refs:
        if audit.chunk_exists(cid):
            continue
        if length <= 0:
            audit.drop_reference(ino, off, cid)
            actions.append(f"dropped a reference of {store.catalog.path_of(ino, db) or f'inode {ino}'} at "
                           f"{off} to chunk {cid}, which does not exist (past the end of the file)")
            continue
        audit.tombstone_chunk(cid, length, now)
        store.ids.skip_past("chunk", cid)
        lost.note(ino, off, off + max(0, length), f"chunk {cid} does not exist")
    for cid, reason in report.bad_chunks.items():
        for ino, off, length in audit.mark_chunk_lost(cid):
            lost.note(ino, off, off + length, reason)
    for ino, reason in report.unrecorded.items():
        for _, off, length in audit.lost_references(ino):
            lost.note(ino, off, off + length, reason)
