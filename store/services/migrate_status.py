"""What a migration did and what may go: ``migration_status`` (records, failures, whether the
originals are unchanged) and ``finalize`` (delete originals imported long enough ago, each
only after re-verifying its session against it)."""

from __future__ import annotations

import collections
import hashlib
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from store.core import legacy
from store.core.errors import BadInputError, StoreError
from store.core.legacy import LegacyError
from store.engine.store import Store
from store.services import legacy_files
from store.backends.catalog.migration import AttachmentRecord, Record
from store.services.migrate_report import MigrationError
from store.services.migrate_sources import STORE_SOURCE
from store.services.session_files import ATTACHMENTS_DIR, SESSIONS_DIR
from store.services.sessions import SessionStore


@dataclass
class OriginalCheck:
    """One record with the state of its original now: identical, changed, missing, deleted
    (finalized), in-store (a dropped file) or unknown (no hash recorded)."""

    record: Record
    original: str
    session_in_store: bool = True
    attachments_identical: int = 0
    attachments_changed: list[str] = field(default_factory=list)
    attachments_missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = self.record.as_dict()
        d["original"] = self.original
        d["session_in_store"] = self.session_in_store
        d["attachments_identical"] = self.attachments_identical
        d["attachments_changed"] = self.attachments_changed
        d["attachments_missing"] = self.attachments_missing
        return d


def _hash_state(path: str, sha: str | None) -> str:
    if path.startswith(STORE_SOURCE):
        return "in-store"
    try:
        got, _ = legacy_files.hash_file(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if sha is None:
        return "unknown"
    return "identical" if got == sha else "changed"


def migration_status(store: Store, *, rehash: bool = True, attachments: bool = True) -> dict:
    """What is done, what failed (with reasons), and whether the originals are still identical.

    Read-only: works on a store opened read-only (beside a mount)."""
    records = store.catalog.reader().migration.records()
    counts = collections.Counter(r.status for r in records)
    checks: list[OriginalCheck] = []
    originals = collections.Counter()
    for rec in records:
        if rec.status == "failed":
            continue
        if rec.status == "finalized" and not os.path.exists(rec.source):
            check = OriginalCheck(rec, "deleted")
        elif not rehash:
            check = OriginalCheck(rec, "not checked")
        else:
            check = OriginalCheck(rec, _hash_state(rec.source, rec.sha256))
            if attachments:
                for a in store.catalog.reader().migration.attachments(rec.id):
                    state = _hash_state(a.source, a.sha256)
                    if state in ("identical", "in-store"):
                        check.attachments_identical += 1
                    elif state == "missing":
                        check.attachments_missing.append(a.source)
                    else:
                        check.attachments_changed.append(a.source)
        check.session_in_store = (rec.session_id is not None
                                  and store.resolve(f"{SESSIONS_DIR}/{rec.session_id}") is not None)
        originals[check.original] += 1
        checks.append(check)
    return {
        "store": str(store.root),
        "records": len(records),
        "counts": {s: counts.get(s, 0) for s in ("verified", "imported", "failed", "finalized")},
        "originals": dict(originals),
        "sessions": [c.as_dict() for c in checks],
        "failed": [r.as_dict() for r in records if r.status == "failed"],
    }


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


_UNIT = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'30d' -> seconds; units s, m, h, d (default), w."""
    m = _DURATION.fullmatch(text or "")
    if not m:
        raise BadInputError(f"duration {text!r}: expected a number with a unit s, m, h, d or w (e.g. 30d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


_ATTACHMENT_ID = re.compile(rb'"attachmentId"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _ids_mentioned(path: Path) -> set[str]:
    """attachmentIds mentioned in a file's raw bytes (works on broken JSON too)."""
    try:
        data, _ = legacy_files.read_file(path, 1 << 40, "session file")
    except LegacyError:
        return set()
    return {m.group(1).decode("utf-8", "replace") for m in _ATTACHMENT_ID.finditer(data)}


@dataclass
class FinalizeResult:
    deleted: list[str] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)        # {"source", "reason"}
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def finalize(store: Store, older_than_seconds: float, *, dry_run: bool = False,
             keep_attachments: bool = False, now: float | None = None) -> FinalizeResult:
    """Delete the originals of sessions imported more than ``older_than_seconds`` ago, each only
    after re-verifying it: the file's SHA-256 equals the record, its JSON values equal the
    store's export, and (for attachments) the file equals the record and the store's copy.

    An attachment original is deleted only when every record that copied it is being
    finalized, and no file left in its legacy store's ``sessions/`` mentions its id (so a
    session that failed to import keeps its attachments). Nothing else is ever deleted.
    Records become ``finalized`` (durably) before their files are unlinked.
    """
    if store.readonly and not dry_run:
        raise MigrationError(f"store {store.root} is open read-only; finalize records what it deletes")
    result = FinalizeResult(dry_run=dry_run)
    catalog = store.catalog.reader().migration
    records = catalog.records()
    cutoff_ns = ((now if now is not None else time.time()) - older_than_seconds) * 1e9
    sessions = SessionStore(store)
    chosen: list[tuple[Record, list[AttachmentRecord]]] = []
    for rec in records:
        if rec.status not in ("verified", "finalized") or rec.source.startswith(STORE_SOURCE):
            continue
        if rec.status == "finalized" and not os.path.lexists(rec.source):
            continue
        if (rec.verified_at or rec.imported_at or 0) > cutoff_ns:
            result.kept.append({"source": rec.source, "reason": "imported too recently"})
            continue
        problem = _reverify(store, sessions, rec)
        if problem:
            result.kept.append({"source": rec.source, "reason": problem})
            continue
        chosen.append((rec, catalog.attachments(rec.id)))
    chosen_ids = {rec.id for rec, _ in chosen}
    # attachments: every record using the source must be chosen; none of the remaining files mention it
    users = catalog.attachment_users()
    finalized_ids = {r.id for r in records if r.status == "finalized"}
    deleting_sessions = {rec.source for rec, _ in chosen}
    mentioned_cache: dict[Path, set[str]] = {}

    def still_mentioned(attachment_source: str, attachment_id: str) -> bool:
        root = Path(attachment_source).parent.parent / "sessions"
        if root not in mentioned_cache:
            ids: set[str] = set()
            try:
                for entry in os.scandir(root):
                    if entry.path not in deleting_sessions and entry.is_file():
                        ids |= _ids_mentioned(Path(entry.path))
            except FileNotFoundError:
                pass
            mentioned_cache[root] = ids
        return attachment_id in mentioned_cache[root]

    attachment_files: dict[str, AttachmentRecord] = {}
    if not keep_attachments:
        for rec, rows in chosen:
            for a in rows:
                if a.source.startswith(STORE_SOURCE) or a.source in attachment_files:
                    continue
                if not users.get(a.source, set()) <= (chosen_ids | finalized_ids):
                    result.kept.append({"source": a.source, "reason": "also used by a session not finalized now"})
                    continue
                if not os.path.lexists(a.source):
                    continue
                if still_mentioned(a.source, a.name.rpartition(".")[0]):
                    result.kept.append({"source": a.source,
                                        "reason": "still mentioned by a legacy session file left in place"})
                    continue
                state = _hash_state(a.source, a.sha256)
                if state != "identical":
                    result.kept.append({"source": a.source, "reason": f"attachment original is {state}"})
                    continue
                attachment_files[a.source] = a
    if dry_run:
        result.deleted = [rec.source for rec, _ in chosen] + sorted(attachment_files)
        return result
    if chosen:
        ids = [rec.id for rec, _ in chosen]

        def hook(txn) -> None:
            txn.migration.mark_finalized(ids)
        store.write_files({}, on_commit=hook)
        store.flush()
    for path in [rec.source for rec, _ in chosen] + sorted(attachment_files):
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                result.kept.append({"source": path, "reason": "not a regular file; left alone"})
                continue
            os.unlink(path)
            result.deleted.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            result.kept.append({"source": path, "reason": f"cannot delete: {exc.strerror or exc}"})
    return result


def _reverify(store: Store, sessions: SessionStore, rec: Record) -> str | None:
    """None when the original still equals the record and the store's export; else why not."""
    try:
        st = os.lstat(rec.source)
    except FileNotFoundError:
        return "original is missing"
    if not stat.S_ISREG(st.st_mode):
        return "original is not a regular file"
    try:
        data, _ = legacy_files.read_file(rec.source, 1 << 40, "session file")
    except LegacyError as exc:
        return exc.reason
    if hashlib.sha256(data).hexdigest() != rec.sha256:
        return "original changed since it was imported (sha256 differs from the record)"
    try:
        file_digest = legacy.canonical_digest(legacy.parse(data))
    except LegacyError as exc:
        return exc.reason
    del data
    if file_digest != rec.digest:
        return "original's values differ from the recorded digest"
    try:
        doc = sessions.load_full_session(rec.session_id)
    except StoreError as exc:
        return f"cannot export the session from the store: {exc}"
    if doc is None:
        return f"session {rec.session_id} is no longer in the store"
    if legacy.canonical_digest(doc) != file_digest:
        return "the store's export differs from the original (the session changed after import?)"
    base = f"{SESSIONS_DIR}/{rec.session_id}/{ATTACHMENTS_DIR}"
    for a in store.catalog.reader().migration.attachments(rec.id):
        ino = store.resolve(f"{base}/{a.name}")
        if ino is None:
            return f"attachment {a.name} is no longer in the store"
        try:
            if store.content_hash(ino) != a.sha256:
                return f"attachment {a.name} in the store differs from the record"
        except StoreError as exc:
            return f"attachment {a.name} cannot be read from the store: {exc}"
    return None
