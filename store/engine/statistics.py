"""``Store.statistics()``: typed snapshots built from O(1) counters, never a table scan.

The catalog part comes from its running totals (``meta.totals()``: one read of a few rows,
in one snapshot); the rest from counters the running parts keep in memory (cache,
persistence queue, attribute cache, background maintenance, the search index's
rebuild). A catalog opened read-only before its upgrade to the counters' format
is counted instead: correct, slower, and said so in
``counted_by``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from store.backends.catalog.search import SearchIndexStatistics
from store.engine.attr_cache import AttrCacheStatistics
from store.engine.dir_cache import DirCacheStatistics
from store.engine.cache import CacheStatistics
from store.engine.persist import PersistStatistics


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
    background: dict | None = None


@dataclass(frozen=True)
class StoreStatistics:
    """Sizes are bytes. ``logical``: sum of file sizes; ``referenced``: file bytes that are
    not holes; ``unique``: distinct chunk bytes still referenced; ``stored``: pack bytes
    on disk (committed); ``dedup_ratio`` = referenced / unique; ``compression_ratio`` =
    decoded / encoded block bytes. ``maintenance``: garbage collection and background
    compression; ``attr_cache``: inode attributes served from memory; ``dir_cache``: directory
    entries served from memory; ``search``: the
    full-text index; ``counted_by``: ``counters`` (O(1)) or ``scan`` (a catalog not yet
    upgraded, opened read-only)."""
    files: int
    sessions: int
    logical_bytes: int
    referenced_bytes: int
    unique_bytes: int
    unreferenced_bytes: int
    raw_block_bytes: int
    stored_bytes: int
    block_bytes: int
    packs: int
    dedup_ratio: float
    compression_ratio: float
    space_saving: float
    cache: CacheStatistics
    queue: PersistStatistics | None
    maintenance: MaintenanceStatistics
    attr_cache: AttrCacheStatistics
    dir_cache: DirCacheStatistics
    search: SearchIndexStatistics
    counted_by: str = "counters"

    def as_dict(self) -> dict:
        return asdict(self)


def store_statistics(store) -> StoreStatistics:
    c, counted_by = store.catalog.reader().meta.totals()
    background = store.background.statistics() if store.background is not None else None
    maintenance = MaintenanceStatistics(
        c["recompressed_blocks"], c["recompress_bytes_before"], c["recompress_bytes_after"],
        c["blocks"] - c["recompressed_blocks"], c["block_bytes"] - c["recompress_bytes_after"],
        c["dictionaries"], c["dictionary_bytes"], c["pack_bytes"] - c["block_bytes"], c["lost_files"], background)
    referenced, unique, logical = c["referenced_bytes"], c["unique_bytes"], c["logical_bytes"]
    return StoreStatistics(
        files=c["files"], sessions=c["sessions"], logical_bytes=logical, referenced_bytes=referenced,
        unique_bytes=unique, unreferenced_bytes=c["unreferenced_bytes"], raw_block_bytes=c["raw_block_bytes"],
        stored_bytes=c["pack_bytes"], block_bytes=c["block_bytes"], packs=c["packs"],
        dedup_ratio=referenced / unique if unique else 1.0,
        compression_ratio=c["raw_block_bytes"] / c["block_bytes"] if c["block_bytes"] else 1.0,
        space_saving=1 - c["pack_bytes"] / logical if logical else 0.0,
        cache=store.cache.statistics(), queue=store.persister.statistics() if store.persister else None,
        maintenance=maintenance, attr_cache=store.attrs.statistics(),
        dir_cache=store.dirs.statistics(),
        search=store.text_index.statistics(), counted_by=counted_by)
