"""The migrator's record writes (each inside a ``write_files`` group, so a record changes
with the files it describes) and the verification of what it imported."""

from __future__ import annotations

import logging

from store.backends.catalog.migration import ACTIVE, AttachmentRecord, Record
from store.core import legacy
from store.core.errors import CatalogError, ConflictError, StoreError
from store.core.legacy import Prepared
from .migrate_report import Outcome, Refused
from .migrate_sources import ERROR_SUFFIX, Job, Pending, list_names
from .session_files import ATTACHMENTS_DIR, SESSIONS_DIR

log = logging.getLogger("sessionfs.migrate")


class Recording:
    """Part of ``Migrator``: recording outcomes and verifying imports."""

    def _import_hook(self, job: Job, p: Prepared, rows: list[AttachmentRecord]):
        store = self.store
        base = f"{SESSIONS_DIR}/{p.session_id}"

        def hook(txn) -> None:
            if store.resolve(base, txn) is not None:
                raise Refused("exists", f"a session {p.session_id} already exists in the store; not overwritten")
            try:
                txn.migration.record_imported(job.source, p.session_id, p.sha256, p.size, p.mtime_ns, p.digest, rows)
            except ConflictError as exc:       # the catalog says which record was in the way
                raise Refused("exists", str(exc)) from None
        return hook

    def _record_failure(self, job: Job, outcome: Outcome, rec: Record | None) -> None:
        """A failed record for ``job.source`` (never replacing an active one), plus an ``.error``
        file beside a dropped store file."""
        if outcome.stage == "changed" or (rec is not None and rec.status in ACTIVE):
            return
        writes: dict[str, bytes] = {}
        if job.store_path is not None:
            writes[job.store_path + ERROR_SUFFIX] = (f"not imported: {outcome.reason}\n").encode()
            self._touch(job.store_path + ERROR_SUFFIX)

        def hook(txn) -> None:
            txn.migration.record_failed(job.source, outcome.session_id, outcome.sha256, outcome.size, job.mtime_ns,
                                        outcome.stage, outcome.reason)
        self.store.write_files(writes, on_commit=hook)

    def _touch_record(self, rec: Record, p: Prepared) -> None:
        """Same content, new mtime (a copy or touch): remember it so the next run skips unread."""
        def hook(txn) -> None:
            txn.migration.touch(rec.id, p.sha256, p.mtime_ns)
        self.store.write_files({}, on_commit=hook)

    # -- verification ----------------------------------------------------------------------
    def _verify_batch(self, pending: list[Pending]) -> list[Outcome]:
        """Wait for the batch's commits, verify each session, record the verdicts durably."""
        for p in pending:
            if p.group is not None:
                p.group.done.wait()
        outcomes: list[Outcome] = []
        verified: list[Pending] = []
        for p in pending:
            group, p.group = p.group, None
            n = len(p.attachments)
            if group is not None and group.error is not None:
                stage = getattr(group.error, "stage", "write")
                outcome = Outcome(p.job.source, "failed", p.session_id, f"not written: {group.error}", stage,
                                  p.size, p.sha256)
                self._record_failure(p.job, outcome, None)
                outcomes.append(outcome)
                continue
            problem = self._verify(p)
            if problem is None:
                verified.append(p)
                outcomes.append(Outcome(p.job.source, "imported", p.session_id, None, None, p.size, p.sha256, n))
            else:
                self._remove(p, problem)
                outcomes.append(Outcome(p.job.source, "failed", p.session_id,
                                        f"verification failed, the session was removed again: {problem}",
                                        "verify", p.size, p.sha256))
        if verified:
            self._mark_verified(verified)
        return outcomes

    def _verify(self, p: Pending) -> str | None:
        """None when the store's export of the session equals what was recorded; else why not."""
        sid = p.session_id
        try:
            doc = self.sessions.load_full_session(sid)
        except CatalogError:
            raise           # the catalog failed, not the session: retry later, keep the import
        except StoreError as exc:
            return f"cannot export the session: {exc}"
        if doc is None:
            return f"{SESSIONS_DIR}/{sid}/metadata.json is missing"
        digest = legacy.canonical_digest(doc)
        del doc
        if digest != p.digest:
            return f"the exported JSON values differ from the legacy file (digest {digest[:12]}... != {p.digest[:12]}...)"
        base = f"{SESSIONS_DIR}/{sid}/{ATTACHMENTS_DIR}"
        present = list_names(self.store, base)
        missing = sorted(set(p.attachments) - present)
        if missing:
            return f"attachments missing from {base}: {missing[:5]}"
        for name, sha in sorted(p.attachments.items()):
            ino = self.store.resolve(f"{base}/{name}")
            try:
                got = self.store.content_hash(ino)
            except CatalogError:
                raise
            except StoreError as exc:
                return f"attachment {name}: cannot be read back: {exc}"
            if got != sha:
                return f"attachment {name}: stored bytes differ (sha256 {got[:12]}... != {sha[:12]}...)"
        return None

    def _mark_verified(self, verified: list[Pending]) -> None:
        sources = [p.job.source for p in verified]

        def hook(txn) -> None:
            txn.migration.mark_verified(sources)
        dropped = [p for p in verified if p.job.store_path is not None]
        self.store.write_files({}, on_commit=hook)
        for p in dropped:                 # a dropped file goes once its session is verified
            self._remove_dropped(p)

    def _remove_dropped(self, p: Pending) -> None:
        path = p.job.store_path
        size, mtime = p.job.size, p.job.mtime_ns
        store = self.store

        def hook(txn) -> None:
            ino = store.resolve(path, txn)
            row = store.catalog.inode(ino, txn) if ino is not None else None
            if row is not None and (row.size, row.mtime_ns) != (size, mtime):
                raise Refused("changed", f"{path} changed while it was imported; kept")
        writes = {path: None}
        if store.exists(path + ERROR_SUFFIX):
            writes[path + ERROR_SUFFIX] = None
        store.write_files(writes, on_commit=hook)
        for written in writes:
            self._touch(written)

    def _remove(self, p: Pending, reason: str) -> None:
        """Take a session that failed verification out again, and record why (one group)."""
        source = p.job.source
        full = f"verification failed, the session was removed again: {reason}"

        def hook(txn) -> None:
            txn.migration.mark_verification_failed(source, full)
        writes = {}
        if p.job.store_path is not None:
            writes[p.job.store_path + ERROR_SUFFIX] = f"not imported: {full}\n".encode()
            self._touch(p.job.store_path + ERROR_SUFFIX)
        log.error("%s: %s", source, full)
        self.store.write_files(writes, delete_trees=[f"{SESSIONS_DIR}/{p.session_id}"], on_commit=hook)
        self._touch(f"{SESSIONS_DIR}/{p.session_id}")
