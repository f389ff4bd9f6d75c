"""What ``verify`` found (``Problem``, ``Report``) and the plans for ``--repair`` it carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from store.core.units import human_bytes

#: Paths named in one problem line before "and N more".
MAX_PATHS = 20


@dataclass
class Problem:
    kind: str
    message: str
    severity: str = "error"                 # "error" or "warning"
    paths: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    repair: str | None = None               # what --repair does about it; None: not repaired
    # Re-checked against the current catalog (a CatalogView) after the snapshot (background maintenance).
    recheck: Callable | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("recheck", None)
        return d

    def line(self) -> str:
        return f"{self.severity}: {self.kind}: {self.message}"


@dataclass
class Report:
    data: bool
    problems: list[Problem] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    lost: list[dict] = field(default_factory=list)        # active lost+found entries
    # Plans for repair (ids), filled while checking.
    bad_chunks: dict = field(default_factory=dict)         # chunk id -> reason
    bad_blocks: dict = field(default_factory=dict)         # block id -> reason (wholly unreadable)
    missing_refs: list = field(default_factory=list)       # (ino, off, chunk_id, inferred length)
    missing_packs: list = field(default_factory=list)
    truncated_packs: dict = field(default_factory=dict)    # pack id -> file size
    orphan_packs: list = field(default_factory=list)
    refcounts: list = field(default_factory=list)          # chunk ids
    nlinks: list = field(default_factory=list)             # (ino, expected)
    dangling: list = field(default_factory=list)           # (parent, name)
    orphan_file_chunks: list = field(default_factory=list)  # inos
    session_dirs: set = field(default_factory=set)         # dir inos to re-index
    stale_sessions: list = field(default_factory=list)     # session ids
    unrecorded: dict = field(default_factory=dict)         # ino -> reason (lost, not in lost_found)
    stale_lost: int = 0                                    # lost_found entries of files since rewritten
    counters: bool = False                                 # the stored totals disagree with the tables

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def repairable(self) -> bool:
        return any(p.repair for p in self.problems) or bool(self.stale_lost)

    def summary(self) -> str:
        c = self.counts
        checked = (f"checked {c.get('packs', 0):,} packs, {c.get('blocks', 0):,} blocks, "
                   f"{c.get('chunks', 0):,} chunks, {c.get('files', 0):,} files, {c.get('sessions', 0):,} sessions")
        if self.data:
            checked += f"; {human_bytes(c.get('decoded_bytes', 0))} decoded and hashed"
        else:
            checked += " (locations and headers; --data reads and hashes everything)"
        e, w = len(self.errors), len(self.warnings)
        verdict = "no problems" if not e and not w else \
            f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"
        lines = [checked, verdict]
        if self.lost:
            lines.append(f"lost+found: {len(self.lost)} file{'s' if len(self.lost) != 1 else ''} with lost data "
                         "(reads of the lost ranges fail)")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "data": self.data, "counts": self.counts,
                "problems": [p.as_dict() for p in self.problems], "lost_found": self.lost,
                "errors": len(self.errors), "warnings": len(self.warnings)}


def ranges_text(ranges: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"[{a}, {b})" for a, b in ranges[:3])
    return shown + (f" and {len(ranges) - 3} more ranges" if len(ranges) > 3 else "")


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def merge_plans(plan: Report, earlier: Report) -> None:
    """Add to ``plan`` the lost data an earlier pass saw (before the writable open's recovery
    re-extended a truncated pack with zeros, which a pass without --data cannot tell from data)."""
    for bid, why in earlier.bad_blocks.items():
        plan.bad_blocks.setdefault(bid, why)
    for cid, why in earlier.bad_chunks.items():
        plan.bad_chunks.setdefault(cid, why)
    for pid, size in earlier.truncated_packs.items():
        plan.truncated_packs.setdefault(pid, size)
    for pid in earlier.missing_packs:
        if pid not in plan.missing_packs:
            plan.missing_packs.append(pid)

