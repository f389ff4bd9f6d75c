"""The migrator's import pipeline: jobs in order, prepared (in worker processes when asked),
checked against the record and the tree, queued as one group per session, verified a
batch behind."""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from store.backends.catalog.migration import ACTIVE, AttachmentRecord, Record
from store.core import legacy
from store.core.legacy import LegacyError, Prepared
from store.core.units import iso_ns
from store.engine.store import Store
from store.services import legacy_files
from .migrate_report import Outcome
from .migrate_sources import (STORE_SOURCE, DirAttachments, Job, Pending, StoreAttachments, legacy_error_outcome,
                              read_store_file)
from .session_files import ATTACHMENTS_DIR, SESSIONS_DIR

log = logging.getLogger("sessionfs.migrate")


class Pipeline:
    """Part of ``Migrator``: turning jobs into outcomes."""

    def _file_job(self, path, attachments_dir, check_name) -> Job:
        path = os.path.abspath(os.fspath(path))
        if attachments_dir is None:
            parent = Path(path).parent
            base = parent.parent if parent.name == "sessions" else parent
            attachments_dir = base / "attachments"
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        return Job(path, size, mtime, DirAttachments(Path(attachments_dir)), path=path, check_name=check_name)

    def _store_job(self, path: str) -> Job | Outcome:
        norm = "/".join(p.decode("utf-8", "surrogateescape") for p in Store.split_path(path))
        source = STORE_SOURCE + norm
        self.store.settle()      # the dropped file's own write is committed: its size/mtime are final
        ino = self.store.resolve(norm)
        if ino is None:
            return Outcome(source, "skipped", reason="no longer in the store")
        row = self.store.getattr(ino)
        if not stat.S_ISREG(row.mode):
            return Outcome(source, "skipped", reason="not a regular file")
        return Job(source, row.size, row.mtime_ns, StoreAttachments(self.store), store_path=norm,
                    check_name=False)

    def _run_single(self, job: Job, counted: bool = False) -> Outcome:
        got: list[Outcome] = []
        with self._run_lock:
            if not counted:
                self._cancel.clear()
                self._begin(1, job.size)
            with self._lock:
                self._running_jobs += 0 if counted else 1
            try:
                self._run([job], jobs=1, batch=1, emit=lambda o, ids=(): got.append(o), referenced=set())
            finally:
                if not counted:
                    with self._lock:
                        self._running_jobs -= 1
                    self._end()
        if not got:
            return Outcome(job.source, "skipped", reason="cancelled before it started", size=job.size)
        return got[0]

    # -- the pipeline ---------------------------------------------------------------------
    def _run(self, jobs_list: list[Job], *, jobs: int, batch: int, emit, referenced: set[str]) -> bool:
        """Process jobs in order; False when cancelled before the end.

        Pipelined: while batch k commits in the persistence worker, batch k+1 is prepared
        and queued; then batch k is verified. One durable flush at the end (each session
        commits atomically with its record, so a power loss only means importing the
        sessions of the last seconds again)."""
        reader = self.store.catalog.reader()
        records = {r.source: r for r in reader.migration.records()}
        claimed: dict[str, str] = {}
        current: list[Pending] = []
        current_bytes = 0
        previous: list[Pending] = []
        complete = True

        def finish(outcome: Outcome) -> None:
            self._count(outcome)
            emit(outcome)

        def verify_previous() -> None:
            nonlocal previous
            batch_, previous = previous, []
            for outcome in self._verify_batch(batch_):
                finish(outcome)

        try:
            for job, prep in self._prepared(jobs_list, jobs, records):
                if not self._checkpoint():
                    complete = False
                    break
                with self._lock:
                    self._current = job.source
                result = self._handle(job, prep, records.get(job.source), claimed, referenced)
                if isinstance(result, Outcome):
                    finish(result)
                    continue
                current.append(result)
                current_bytes += result.group.nbytes if result.group is not None else 0
                if len(current) >= batch or current_bytes >= self.batch_bytes:
                    verify_previous()
                    previous, current, current_bytes = current, [], 0
        finally:
            verify_previous()
            previous, current = current, []
            verify_previous()
            self.store.flush()
            self._notify()
        return complete

    def _plan(self, job: Job, rec: Record | None) -> str:
        """'skip', 'verify' (from the record) or 'prepare'."""
        if rec is None or rec.status == "failed":
            return "prepare"
        same = rec.size == job.size and rec.mtime_ns == job.mtime_ns and job.size > 0
        if same and rec.status in ("verified", "finalized"):
            return "skip"
        if same and rec.status == "imported":
            return "verify"
        return "prepare"

    def _prepared(self, jobs_list: list[Job], jobs: int, records: dict[str, Record]) -> Iterator[tuple]:
        """(job, Prepared | LegacyError | 'skip' | 'verify') in job order; prepares ahead in
        ``jobs`` worker processes when asked."""
        plans = [(job, self._plan(job, records.get(job.source))) for job in jobs_list]
        if jobs <= 1 or sum(1 for _, p in plans if p == "prepare") < 2:
            for job, plan in plans:
                yield job, (self._prepare_here(job) if plan == "prepare" else plan)
            return
        ctx = multiprocessing.get_context("forkserver")
        window: collections.deque = collections.deque()
        in_flight = 0
        budget = max(self.batch_bytes, 2 * max((j.size for j in jobs_list), default=0))
        it = iter(plans)
        exhausted = False
        broken = False
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                                    initializer=legacy_files.worker_init,
                                                    initargs=(os.getpid(),)) as pool:
            try:
                while True:
                    while not exhausted and len(window) < 2 * jobs and (in_flight < budget or not window):
                        try:
                            job, plan = next(it)
                        except StopIteration:
                            exhausted = True
                            break
                        fut = None
                        if plan == "prepare" and job.path is not None and not broken:
                            fut = pool.submit(legacy_files.prepare_file, job.path, self.limits, job.check_name)
                            in_flight += job.size
                        window.append((job, plan, fut))
                    if not window:
                        return
                    job, plan, fut = window.popleft()
                    if plan != "prepare":
                        yield job, plan
                        continue
                    if fut is None:
                        yield job, self._prepare_here(job)
                        continue
                    in_flight -= job.size
                    try:
                        result = fut.result()
                    except LegacyError as exc:
                        result = exc
                    except concurrent.futures.process.BrokenProcessPool:
                        log.warning("a preparing worker died; preparing %s and the rest here", job.source)
                        broken = True
                        result = self._prepare_here(job)
                    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
                        result = LegacyError("parse", f"cannot be prepared: {type(exc).__name__}: {exc}")
                    yield job, result
            finally:
                for _, _, fut in window:
                    if fut is not None:
                        fut.cancel()

    def _prepare_here(self, job: Job) -> Prepared | LegacyError:
        try:
            if job.store_path is not None:
                data = read_store_file(self.store, job.store_path, self.limits.max_file_bytes, "read")
                return legacy.prepare_bytes(data, source=job.source, mtime_ns=job.mtime_ns, limits=self.limits)
            return legacy_files.prepare_file(job.path, self.limits, job.check_name)
        except LegacyError as exc:
            return exc
        except MemoryError:
            return LegacyError("read", "out of memory while preparing this file")

    def _handle(self, job: Job, prep, rec: Record | None, claimed: dict[str, str],
                referenced: set[str]) -> Outcome | Pending:
        if prep == "skip":
            return Outcome(job.source, "skipped", rec.session_id, f"already imported ({iso_ns(rec.imported_at)})",
                           size=job.size, sha256=rec.sha256)
        if prep == "verify":
            return self._pending_from_record(job, rec)
        if isinstance(prep, LegacyError):
            outcome = legacy_error_outcome(job, prep)
            self._record_failure(job, outcome, rec)
            return outcome
        p: Prepared = prep
        job.size, job.mtime_ns = p.size, p.mtime_ns
        if rec is not None and rec.status in ACTIVE:
            if rec.sha256 == p.sha256:
                if rec.status == "imported":
                    return self._pending_from_record(job, rec)
                self._touch_record(rec, p)
                return Outcome(job.source, "skipped", p.session_id,
                               f"already imported ({iso_ns(rec.imported_at)}); content unchanged",
                               size=p.size, sha256=p.sha256)
            return Outcome(job.source, "failed", p.session_id,
                           f"the file changed since it was imported ({iso_ns(rec.imported_at)}; sha256 "
                           f"{rec.sha256[:12]}... -> {p.sha256[:12]}...); the store keeps the imported version",
                           "changed", p.size, p.sha256)
        other = self.store.catalog.reader().migration.active_record_of(p.session_id)
        if other is not None and other.source != job.source:
            if other.sha256 == p.sha256:
                return Outcome(job.source, "skipped", p.session_id, f"already imported from {other.source}",
                               size=p.size, sha256=p.sha256)
            return self._fail(job, p, "exists", f"session {p.session_id} was already imported from "
                                                f"{other.source}, with different content; not overwritten", rec)
        if p.session_id in claimed:
            return self._fail(job, p, "exists", f"session {p.session_id} is also in {claimed[p.session_id]}, "
                                                "imported first in this run", rec)
        base = f"{SESSIONS_DIR}/{p.session_id}"
        if self.store.exists(base):
            return self._fail(job, p, "exists", f"a session {p.session_id} already exists in the store "
                                                "(not from this file); not overwritten", rec)
        writes: dict[str, bytes] = {f"{base}/{path}": data for path, data in p.files.items()}
        p.files = {}
        rows: list[AttachmentRecord] = []
        try:
            for attachment_id in p.attachment_ids:
                name = job.attachments.find(attachment_id)
                data, source = job.attachments.read(name, self.limits)
                rows.append(AttachmentRecord(name, source, hashlib.sha256(data).hexdigest(), len(data)))
                writes[f"{base}/{ATTACHMENTS_DIR}/{name}"] = data
                referenced.add(name)
        except LegacyError as exc:
            return self._fail(job, p, exc.stage, exc.reason, rec)
        claimed[p.session_id] = job.source
        group = self.store.write_files(writes, on_commit=self._import_hook(job, p, rows))
        self._touch(base)
        return Pending(job, p.session_id, p.sha256, p.size, p.digest, {r.name: r.sha256 for r in rows}, group)

    def _pending_from_record(self, job: Job, rec: Record) -> Pending:
        rows = self.store.catalog.reader().migration.attachments(rec.id)
        return Pending(job, rec.session_id, rec.sha256, rec.size or 0, rec.digest,
                        {r.name: r.sha256 for r in rows}, None, rec.id)

    def _fail(self, job: Job, p: Prepared, stage: str, reason: str, rec: Record | None) -> Outcome:
        outcome = Outcome(job.source, "failed", p.session_id, reason, stage, p.size, p.sha256)
        self._record_failure(job, outcome, rec)
        return outcome
