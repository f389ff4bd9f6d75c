"""Catalog format upgrades: one step per version, all run in one transaction at a writable open.

``STEPS[i]`` turns format ``i + 1`` into ``i + 2``; ``schema.FORMAT_VERSION`` is the
version after the last step. ``run`` applies every step a catalog lacks and sets the
new version inside one ``BEGIN IMMEDIATE`` transaction, so a crash or an error leaves
the catalog exactly as it was (SQLite's DDL is transactional) and the next writable
open simply runs it again. A step must work from the tables alone (it runs before
recovery) and must not use ``executescript`` (that would commit half of it).

``READABLE_FROM``: the oldest format a read-only open accepts as it is (it cannot
upgrade); the store reads what that format lacks another way (statistics: by
counting, see ``counters.recount``).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Callable

from . import counters
from store.core.errors import FormatError
from .schema import FORMAT_VERSION, ensure_maintenance_tables, read_format_version

log = logging.getLogger("sessionfs.upgrade")


@dataclass(frozen=True)
class Step:
    to_version: int
    what: str
    apply: Callable[[sqlite3.Connection], None]


def _add_counters(db: sqlite3.Connection) -> None:
    ensure_maintenance_tables(db)       # the counters' triggers watch them
    counters.create(db)


STEPS: tuple[Step, ...] = (
    Step(2, "statistics counters kept by triggers (counters)", _add_counters),
)

READABLE_FROM = 1


def _hook(point: str) -> None:
    """Test hook (crash tests replace it): called after each step and before COMMIT."""


def _check_known(version: int | None, path) -> None:
    if version is None:
        raise FormatError(f"{path} is not a sessionfs catalog (no format version)")
    if version > FORMAT_VERSION:
        raise FormatError(f"{path} has catalog format {version}, made by a newer sessionfs; this sessionfs "
                          f"reads format {FORMAT_VERSION} and upgrades older ones")


def run(db: sqlite3.Connection, path) -> int:
    """Upgrade the catalog behind ``db`` (a writable connection outside any transaction) to
    FORMAT_VERSION; returns the version it had. Refuses a newer format."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = read_format_version(db)
        _check_known(version, path)
        for step in STEPS[version - 1:]:
            log.warning("upgrading catalog %s to format %d: %s", path, step.to_version, step.what)
            step.apply(db)
            _hook(f"step-{step.to_version}")
        if version != FORMAT_VERSION:
            db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION,))
            _hook("version-set")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


def readable(version: int | None, path) -> int:
    """``version`` when a read-only open may read it as it is; else a FormatError saying why."""
    _check_known(version, path)
    if version < READABLE_FROM:
        raise FormatError(f"{path} has catalog format {version}; open it once for writing (mount it, or run "
                          f"'sessionfs verify --repair') to upgrade it to format {FORMAT_VERSION}")
    return version
