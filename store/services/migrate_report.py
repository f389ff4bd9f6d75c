"""What the migrator reports: per-file outcomes, progress snapshots, import reports, errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from store.core.errors import BadInputError, StoreError
from store.core.units import iso_ns


class MigrationError(StoreError):
    """A migration cannot run at all (no legacy directory, store read-only, ...)."""


class Refused(BadInputError):
    """Raised by a group's on_commit hook: the group is rolled back; ``stage`` says why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage = stage


@dataclass(frozen=True)
class Outcome:
    """What happened to one legacy file: ``imported`` (and verified), ``skipped`` or ``failed``."""

    source: str
    status: str
    session_id: str | None = None
    reason: str | None = None
    stage: str | None = None
    size: int = 0
    sha256: str | None = None
    attachments: int = 0

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class MigrationProgress:
    """A snapshot of the migrator's counters (like trio's ``statistics()`` objects).

    ``state``: idle, running, paused or cancelling. Counters cover the current run (or the
    last one, when idle): a run lasts from idle to idle and includes submissions queued
    meanwhile. ``bytes_*`` count legacy session-file bytes. ``eta_seconds`` is None until
    a rate is known. ``recent_failures``: the last 20 (source, reason) pairs, across runs.
    """

    state: str
    sessions_total: int
    sessions_done: int
    imported: int
    skipped: int
    failed: int
    bytes_total: int
    bytes_done: int
    queued: int
    current: str | None
    started_at: float | None
    elapsed_seconds: float
    bytes_per_second: float
    sessions_per_second: float
    eta_seconds: float | None
    recent_failures: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["recent_failures"] = [{"source": s, "reason": r} for s, r in self.recent_failures]
        return d


@dataclass
class ImportReport:
    """The result of ``import_dir``: one Outcome per legacy file, in the order they completed."""

    store: str
    legacy_dir: str
    started_at: float
    finished_at: float = 0.0
    interrupted: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    #: files of LEGACY_DIR/attachments no imported session refers to (orphans, or used only by failures)
    attachments_not_imported: list[str] = field(default_factory=list)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def imported(self) -> list[Outcome]:
        return self.of("imported")

    @property
    def skipped(self) -> list[Outcome]:
        return self.of("skipped")

    @property
    def failed(self) -> list[Outcome]:
        return self.of("failed")

    def as_dict(self) -> dict:
        seconds = max(self.finished_at - self.started_at, 1e-9)
        imported_bytes = sum(o.size for o in self.imported)
        return {
            "store": self.store, "legacy_dir": self.legacy_dir,
            "started": iso_ns(int(self.started_at * 1e9)), "finished": iso_ns(int(self.finished_at * 1e9)),
            "interrupted": self.interrupted,
            "totals": {"files": len(self.outcomes), "imported": len(self.imported), "skipped": len(self.skipped),
                       "failed": len(self.failed), "imported_bytes": imported_bytes,
                       "seconds": round(seconds, 3),
                       "imported_mb_per_second": round(imported_bytes / seconds / 1e6, 3),
                       "imported_sessions_per_second": round(len(self.imported) / seconds, 3)},
            "imported": [o.as_dict() for o in self.imported],
            "skipped": [o.as_dict() for o in self.skipped],
            "failed": [o.as_dict() for o in self.failed],
            "attachments_not_imported": self.attachments_not_imported,
        }
