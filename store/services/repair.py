"""``verify --repair``: fix what needs no guessing, in one durable transaction (see
``store.services.verify`` for what is repaired and what is not)."""

from __future__ import annotations

import hashlib
import json
import stat
import time

from store.backends.catalog.sqlite import counters, session_index
from store.backends.catalog.rows import LOST_BLOCK, LOST_HASH_PREFIX
from store.backends.objects.packs import pack_name
from store.services.verify import Report, merge_ranges, is_lost_hash, ranges_text


def repair(store, report: Report) -> list[str]:
    """Fix what ``report`` found that needs no guessing; returns what was done, one line each.

    Runs in the persistence worker (``Store.run_in_worker``): it changes chunks, blocks and
    packs. ``report`` must come from a pass over this same open store.
    """
    if store.persister is not None and not store.persister.in_worker():
        return store.run_in_worker(lambda: repair(store, report))
    actions: list[str] = []
    now = time.time_ns()
    dropped_blocks: list[int] = []
    with store.catalog.write(durable=True) as db:
        # 1. References of inodes that do not exist or are not files.
        for ino in report.orphan_file_chunks:
            n = db.execute("DELETE FROM file_chunks WHERE ino = ?", (ino,)).rowcount
            actions.append(f"dropped {n} chunk references of inode {ino} (not a file)")
        # 2. Data that is gone: lost chunks (reads fail), files recorded in lost+found.
        lost_files: dict[int, dict] = {}

        def note(ino: int, start: int, end: int, reason: str) -> None:
            entry = lost_files.setdefault(ino, {"ranges": [], "reasons": []})
            entry["ranges"].append((start, end))
            if reason not in entry["reasons"]:
                entry["reasons"].append(reason)

        for ino, off, cid, length in report.missing_refs:
            if db.execute("SELECT 1 FROM chunks WHERE id = ?", (cid,)).fetchone():
                continue
            if length <= 0:
                db.execute("DELETE FROM file_chunks WHERE ino = ? AND off = ? AND chunk_id = ?", (ino, off, cid))
                actions.append(f"dropped a reference of {store.catalog.path_of(ino, db) or f'inode {ino}'} at "
                               f"{off} to chunk {cid}, which does not exist (past the end of the file)")
                continue
            tomb = LOST_HASH_PREFIX + hashlib.sha256(b"sessionfs lost chunk %d" % cid).digest()
            db.execute("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                       "VALUES (?, ?, ?, ?, 0, 0, ?)", (cid, tomb, max(0, length), LOST_BLOCK, now))
            store.ids.chunk = max(store.ids.chunk, cid + 1)
            note(ino, off, off + max(0, length), f"chunk {cid} does not exist")
        for cid, reason in report.bad_chunks.items():
            row = db.execute("SELECT hash, block_id FROM chunks WHERE id = ?", (cid,)).fetchone()
            if row is None or (row[1] == LOST_BLOCK and is_lost_hash(bytes(row[0]))):
                continue
            refs = db.execute("SELECT ino, off FROM file_chunks WHERE chunk_id = ?", (cid,)).fetchall()
            if not refs:
                db.execute("DELETE FROM chunks WHERE id = ?", (cid,))
                continue
            length = db.execute("SELECT length FROM chunks WHERE id = ?", (cid,)).fetchone()[0]
            db.execute("UPDATE chunks SET hash = ?, block_id = ?, block_off = 0 WHERE id = ?",
                       (LOST_HASH_PREFIX + bytes(row[0])[:32], LOST_BLOCK, cid))
            for ino, off in refs:
                note(ino, off, off + length, reason)
        for ino, reason in report.unrecorded.items():
            for off, length in db.execute(
                    "SELECT f.off, c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                    "WHERE f.ino = ? AND c.block_id = ? AND length(c.hash) = 33", (ino, LOST_BLOCK)):
                note(ino, off, off + length, reason)
        # Blocks (and packs) that held only lost data.
        for bid, reason in report.bad_blocks.items():
            if db.execute("SELECT 1 FROM chunks WHERE block_id = ? LIMIT 1", (bid,)).fetchone():
                continue
            if db.execute("DELETE FROM blocks WHERE id = ?", (bid,)).rowcount:
                db.execute("DELETE FROM recompressed WHERE block_id = ?", (bid,))
                dropped_blocks.append(bid)
        if dropped_blocks:
            actions.append(f"dropped {len(dropped_blocks)} unreadable block(s) from the catalog")
        for pid in report.missing_packs:
            if not db.execute("SELECT 1 FROM blocks WHERE pack_id = ? LIMIT 1", (pid,)).fetchone():
                db.execute("DELETE FROM packs WHERE id = ?", (pid,))
                actions.append(f"dropped missing pack {pid:08d} from the catalog")
        for pid, fsize in report.truncated_packs.items():
            db.execute("UPDATE packs SET size = ? WHERE id = ? AND size > ?", (fsize, pid, fsize))
            actions.append(f"set the size of truncated pack {pid:08d} to its {fsize} bytes stored")
        for ino, entry in sorted(lost_files.items()):
            ranges = merge_ranges(entry["ranges"])
            path = store.catalog.path_of(ino, db)
            reason = "; ".join(entry["reasons"])
            db.execute("INSERT INTO lost_found (ino, path, reason, ranges, found_at) VALUES (?, ?, ?, ?, ?)",
                       (ino, path, reason, json.dumps(ranges), now))
            actions.append(f"moved {path or f'inode {ino}'} to lost+found: bytes {ranges_text(ranges)} are lost "
                           f"({reason}); reading them fails, the rest of the file reads")
        # 3. Namespace.
        for parent, name in report.dangling:
            db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (parent, name))
            actions.append(f"dropped the dangling entry {name.decode('utf-8', 'surrogateescape')!r} "
                           f"in directory inode {parent}")
        # 4. Counts (after the changes above).
        fixed = db.execute(
            "UPDATE chunks SET refcount = (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = chunks.id) "
            "WHERE refcount != (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = chunks.id)").rowcount
        fixed += db.execute("UPDATE chunks SET unref_since = ? WHERE refcount = 0 AND unref_since IS NULL",
                            (now,)).rowcount
        if fixed:
            actions.append(f"recounted the references of {fixed} chunk(s)")
        nl = 0
        for ino, _ in report.nlinks + [(p, 0) for p, _ in report.dangling]:
            row = db.execute("SELECT mode, nlink FROM inodes WHERE id = ?", (ino,)).fetchone()
            if row is None:
                continue
            if stat.S_ISDIR(row[0]):
                expected = 2 + db.execute("SELECT count(*) FROM dentries d JOIN inodes c ON c.id = d.ino "
                                          "WHERE d.parent = ? AND c.mode & 61440 = 16384", (ino,)).fetchone()[0]
            else:
                expected = db.execute("SELECT count(*) FROM dentries WHERE ino = ?", (ino,)).fetchone()[0]
            if expected and row[1] != expected:
                db.execute("UPDATE inodes SET nlink = ? WHERE id = ?", (expected, ino))
                nl += 1
        if nl:
            actions.append(f"recounted the link counts of {nl} inode(s)")
        # 5. The session index.
        for sid in report.stale_sessions:
            db.execute("DELETE FROM session_tags WHERE session_id = ?", (sid,))
            db.execute("DELETE FROM session_topics WHERE session_id = ?", (sid,))
            db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
            actions.append(f"deleted the session index row of {sid} (no such session directory)")
        for dir_ino in sorted(report.session_dirs):
            session_index.refresh(db, dir_ino, store.sessions_ino, lambda i: store.read_file_in(db, i))
            actions.append(f"rebuilt the session index row of {store.catalog.path_of(dir_ino, db)}")
        # 6. lost+found entries that no longer apply (file rewritten or deleted).
        stale = db.execute(
            "DELETE FROM lost_found WHERE ino NOT IN (SELECT f.ino FROM file_chunks f JOIN chunks c "
            "ON c.id = f.chunk_id WHERE c.block_id = ? AND length(c.hash) = 33)", (LOST_BLOCK,)).rowcount
        if stale:
            actions.append(f"pruned {stale} lost+found entr{'ies' if stale != 1 else 'y'} of files since "
                           "rewritten or deleted")
        # 7. The totals (last: the changes above kept them in step, a recount sets any drift right).
        if report.counters:
            counters.store_sums(db, counters.recount(db))
            actions.append("stored the recounted totals (counters)")
    # After the commit: caches and files.
    if dropped_blocks or report.bad_chunks:
        store.maintenance_epoch += 1
        store.cache.clear()             # decoded blocks of data now marked lost
    for pid in report.orphan_packs:
        if store.packs.size(pid) is not None and not store.catalog.reader().execute(
                "SELECT 1 FROM packs WHERE id = ?", (pid,)).fetchone():
            store.packs.delete(pid)
            actions.append(f"deleted orphan pack {pack_name(pid)}")
    return actions
