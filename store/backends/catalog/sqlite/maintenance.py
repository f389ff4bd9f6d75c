"""Maintenance counters of the catalog: blocks not yet recompressed, recompressed bytes,
dictionaries, dead pack bytes, lost files (``Store.statistics().maintenance``)."""

from __future__ import annotations

import time

from store.backends.catalog.sqlite.schema import has_table


def pending(db, cold_age: float | None) -> tuple[int, int]:
    """(blocks, framed bytes) that are cold (None: of any age) and not yet handled."""
    cutoff = (1 << 62) if cold_age is None else time.time_ns() - int(cold_age * 1e9)
    handled = "AND NOT EXISTS (SELECT 1 FROM recompressed r WHERE r.block_id = b.id)" \
        if has_table(db, "recompressed") else ""
    return db.execute(f"SELECT count(*), coalesce(sum(length), 0) FROM blocks b WHERE created <= ? {handled}",
                      (cutoff,)).fetchone()
