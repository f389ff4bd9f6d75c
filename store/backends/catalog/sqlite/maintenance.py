"""Maintenance counters of the catalog: blocks not yet recompressed, recompressed bytes,
dictionaries, dead pack bytes, lost files (``Store.statistics().maintenance``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from store.backends.catalog.sqlite.dictionaries import Dictionaries
from store.backends.catalog.sqlite.schema import has_table


def pending(db, cold_age: float | None) -> tuple[int, int]:
    """(blocks, framed bytes) that are cold (None: of any age) and not yet handled."""
    cutoff = (1 << 62) if cold_age is None else time.time_ns() - int(cold_age * 1e9)
    handled = "AND NOT EXISTS (SELECT 1 FROM recompressed r WHERE r.block_id = b.id)" \
        if has_table(db, "recompressed") else ""
    return db.execute(f"SELECT count(*), coalesce(sum(length), 0) FROM blocks b WHERE created <= ? {handled}",
                      (cutoff,)).fetchone()


@dataclass(frozen=True)
class MaintenanceStatistics:
    """``recompressed_blocks``: blocks the compressor handled (of the blocks stored now), whose
    framed bytes went from ``recompress_bytes_before`` to ``recompress_bytes_after``;
    ``blocks_pending``/``bytes_pending``: blocks not handled yet (whatever their age);
    ``dictionary_bytes``: trained dictionaries (stored in the catalog, counted as stored);
    ``dead_pack_bytes``: pack bytes no block uses (gc compaction reclaims them);
    ``lost_files``: files in lost+found; ``background``: this process's gc and compressor."""
    recompressed_blocks: int
    recompress_bytes_before: int
    recompress_bytes_after: int
    blocks_pending: int
    bytes_pending: int
    dictionaries: int
    dictionary_bytes: int
    dead_pack_bytes: int
    lost_files: int
    background: object = None


def maintenance_statistics(r, background: dict | None) -> MaintenanceStatistics:
    """The maintenance counters read on connection ``r``; ``background``: this process's gc and
    compressor statistics (None when none run)."""
    blocks, before, after = 0, 0, 0
    if has_table(r, "recompressed"):
        blocks, before, after = r.execute(
            "SELECT count(*), coalesce(sum(x.length_before), 0), coalesce(sum(b.length), 0) "
            "FROM recompressed x JOIN blocks b ON b.id = x.block_id").fetchone()
    pending_blocks, pending_bytes = pending(r, None)
    ndicts = r.execute("SELECT count(*) FROM dictionaries").fetchone()[0] if has_table(r, "dictionaries") else 0
    live = r.execute("SELECT coalesce(sum(length), 0) FROM blocks").fetchone()[0]
    packs = r.execute("SELECT coalesce(sum(size), 0) FROM packs").fetchone()[0]
    lost = r.execute("SELECT count(DISTINCT ino) FROM lost_found").fetchone()[0] if has_table(r, "lost_found") else 0
    return MaintenanceStatistics(blocks, before, after, pending_blocks, pending_bytes, ndicts,
                                 Dictionaries.total_bytes(r), packs - live, lost, background)
