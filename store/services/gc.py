"""Garbage collection and pack compaction.

Deleting or rewriting a file releases its chunk references
(``content.release_content``); a chunk whose count reaches 0 keeps its row,
with ``unref_since`` set, so that a rewrite putting the same bytes back (an
editor's save-by-rename, a session saved again) finds it by dedup. After a
grace period (``GcOptions.grace``, default 10 minutes) garbage collection:

1. **reclaims** chunks unreferenced for longer than the grace period (catalog
   rows only), then drops blocks with no chunk left and dictionaries no block
   uses (except the newest). A pack left without blocks is deleted.
2. **compacts** packs whose live share fell below ``threshold`` (default 0.5),
   and then, emptiest first, more packs while the store's dead bytes exceed
   ``max_garbage`` (default 5%) of its live bytes, so that after a gc the packs
   hold at most about 5% more than their live data. The live share of a pack is
   the bytes of its blocks weighted by the share of each block's decoded bytes
   that still belongs to a chunk. Each live block is copied to the current
   write pack: as is (the same frame) when most of it is live, or re-encoded
   with only its live chunks (a new block id; the chunks are re-pointed) when
   less than ``reencode_below`` of it is (a FLAC block stays FLAC). A block that
   does not decode is copied as is (verify reports it; gc never makes damage
   worse or hides it).
3. **compacts aged packs**: a pack older than ``max_dead_age`` (default 1 day)
   holding any dead byte is compacted too, re-encoding every block with a dead
   chunk, so no dead byte is paid for indefinitely: a rewritten pack is new, so
   a byte is copied at most once per ``max_dead_age``.
4. **tidies the catalog**: compacts the search index once many documents came in
   since it last did (``SearchIndex.tidy_step``, in bounded steps) and gives the
   catalog's free pages back to the file system (``Maintenance.release_free_pages``).

When it runs: in the daemon (``BackgroundGC``) a pass every 5 minutes, step by
step while the store is idle (no read or write for 0.5 s); offline, ``sessionfs gc``.
So a byte a file no longer uses is freed at the latest ``grace`` + ``max_dead_age``
+ one pass after its release (10 minutes + 1 day + 5 minutes by default), and
sooner when its pack is mostly dead or the store holds more than 5% dead bytes.

Crash safety, at every step (the order is the whole argument):

- new copies are appended through the packer (``store.backends.objects.packs``) and made durable
  (``prepare_commit``) *before* the catalog transaction that points at them,
  which is durable (``synchronous=FULL``) *before* the old pack is deleted
  from the object store;
- a crash before that commit leaves the old locations in the catalog and the new
  bytes either in an orphan pack (deleted at the next open) or past the open
  pack's committed size (cut at the next open);
- a crash after the commit leaves the new locations valid and the old pack an
  orphan object (deleted at the next open).

Concurrency: everything that changes packs, blocks or chunks runs in the
persistence worker (``Store.run_in_worker`` offline, an idle task of the
``Persister`` in the daemon), between commits, in steps of at most
``step_bytes`` copied, so a commit queued behind gc waits for one step at most.
Readers never wait: a block keeps its id when it moves (cached decoded bytes stay
valid), and a read that raced with a move retries on the new locations
(``Store.maintenance_epoch``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from store.core import codec
from store.core.chunker import chunk_hash
from store.core.errors import IntegrityError, SearchIndexError
from store.core.units import human_bytes
from store.backends.catalog.maintenance import AgedBlock, PackLiveness
from store.backends.catalog.rows import ChunkInBlock
from .audio_layout import trimmed_layout
from .exclusive import MAINTENANCE, required_turn
from .switch_over import Appender, after_commit, drop_empty_packs

log = logging.getLogger("sessionfs.gc")

DEFAULT_GRACE = 600.0
DEFAULT_MAX_DEAD_AGE = 86_400.0
RECLAIM_BATCH = 20_000
#: Pages of the search index written per tidy step (about 4 KB each).
TIDY_PAGES = 512


@dataclass
class GcOptions:
    grace: float = DEFAULT_GRACE        # seconds a chunk stays unreferenced before it is reclaimed
    threshold: float = 0.5              # compact packs whose live share is below this
    max_garbage: float = 0.05           # then compact more (emptiest first) while dead bytes exceed this share
                                        # of the live bytes
    reencode_below: float = 0.5         # re-encode a block with only its live chunks below this live share
    max_dead_age: float = DEFAULT_MAX_DEAD_AGE  # compact a pack this old (seconds) holding any dead byte
    step_bytes: int = 16 * 1024 * 1024  # bytes copied per worker step


@dataclass
class GcResult:
    chunks_reclaimed: int = 0
    chunk_bytes_reclaimed: int = 0
    blocks_dropped: int = 0
    dictionaries_dropped: int = 0
    packs_deleted: int = 0
    orphan_objects_deleted: int = 0
    packs_compacted: int = 0
    blocks_copied: int = 0
    blocks_reencoded: int = 0
    bytes_copied: int = 0
    catalog_pages_released: int = 0
    stored_before: int = 0
    stored_after: int = 0
    dry_run: bool = False
    compaction_plan: list = field(default_factory=list)     # (pack id, size, live share)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verb = "would reclaim" if self.dry_run else "reclaimed"
        lines = [f"{verb} {self.chunks_reclaimed:,} unreferenced chunks ({human_bytes(self.chunk_bytes_reclaimed)}), "
                 f"{'would drop' if self.dry_run else 'dropped'} {self.blocks_dropped:,} blocks"]
        if self.dry_run:
            todo = sum(size * share for _, size, share in self.compaction_plan)
            lines.append(f"would compact {len(self.compaction_plan)} packs (about {human_bytes(todo)} of live data to "
                         f"copy) and delete {self.packs_deleted} empty packs")
        else:
            lines.append(f"compacted {self.packs_compacted} packs: copied {self.blocks_copied:,} blocks "
                         f"({human_bytes(self.bytes_copied)}), re-encoded {self.blocks_reencoded:,} mostly dead blocks; "
                         f"deleted {self.packs_deleted} packs and "
                         f"{self.orphan_objects_deleted} orphan objects")
            lines.append(f"stored bytes: {human_bytes(self.stored_before)} -> {human_bytes(self.stored_after)}; "
                         f"catalog pages released: {self.catalog_pages_released:,}")
        return "\n".join(lines)



# -- planning (any thread, read-only) ----------------------------------------------------------
def ns_ago(seconds: float) -> int:
    """The time ``seconds`` before now, in ns (the cut-off of a grace period or a cold age)."""
    return time.time_ns() - int(seconds * 1e9)


#: A pack is compacted for the store-wide garbage bound only when that frees this share of it.
MIN_FREEABLE = 0.05


def plan_compaction(liveness: list[PackLiveness], options: GcOptions) -> list[tuple[int, int, float]]:
    """Packs to compact, as (pack id, size, live share), emptiest first.

    The live share counts what compaction would keep, so a pack it cannot shrink is never
    chosen again and again (no churn)."""
    live_total = sum(min(p.live, p.size) for p in liveness)
    dead = sum(p.size - min(p.live, p.size) for p in liveness)
    shares = sorted(((p.pack_id, p.size, min(1.0, p.live / p.size) if p.size else 0.0) for p in liveness),
                    key=lambda r: (r[2], r[0]))
    chosen = []
    for pid, size, share in shares:
        if share < options.threshold or (dead > live_total * options.max_garbage and 1 - share >= MIN_FREEABLE):
            chosen.append((pid, size, share))
            dead -= size * (1 - share)      # what compacting it frees
    taken = {c[0] for c in chosen}
    aged = aged_packs(liveness, options) - taken
    chosen += [(p.pack_id, p.size, _exact(p) / p.size) for p in liveness if p.pack_id in aged]
    return chosen


def _exact(p: PackLiveness) -> float:
    return p.live if p.exact is None else p.exact


def aged_packs(liveness: list[PackLiveness], options: GcOptions) -> set[int]:
    """Packs older than ``max_dead_age`` holding a dead byte (rule 3 of the module doc):
    compacted with every block that holds a dead chunk re-encoded."""
    cutoff = ns_ago(options.max_dead_age)
    return {p.pack_id for p in liveness if p.created <= cutoff and p.size - _exact(p) >= 1}


# -- the work (persistence worker only) ---------------------------------------------------------
class Collector:
    """Garbage collection over an open writable store, one bounded step at a time.

    Every method that changes something must run in the persistence worker
    (``store.run_in_worker`` / an idle task); ``collect`` below does that."""

    def __init__(self, store, options: GcOptions | None = None):
        self.store = store
        self.options = options or GcOptions()
        self.result = GcResult()
        self.aged: set[int] = set()

    # -- 1. reclaim ----------------------------------------------------------------------
    def reclaim_step(self, limit: int = RECLAIM_BATCH) -> bool:
        """Delete up to ``limit`` expired chunks, then blocks without chunks, unused dictionaries
        and packs without blocks. Returns True when there may be more to do."""
        store = self.store
        with store.catalog.write(durable=True) as txn:
            rows = txn.maintenance.reclaim_chunks(ns_ago(self.options.grace), limit)
            dead_blocks = txn.maintenance.drop_blocks_without_chunks()
            dicts = txn.maintenance.drop_unused_dictionaries()
            deleted_packs = drop_empty_packs(store, txn)
        self.result.chunks_reclaimed += len(rows)
        self.result.chunk_bytes_reclaimed += sum(r[1] for r in rows)
        self.result.blocks_dropped += len(dead_blocks)
        self.result.dictionaries_dropped += len(dicts)
        for d in dicts:
            store.dictionaries.forget(d)
        self._after_commit(dead_blocks, deleted_packs)
        return len(rows) == limit

    def drop_orphan_objects(self) -> int:
        """Delete the pack objects of a shared store that no commit names and that are older
        than the grace period (a writer died between their put and its commit); how many."""
        store = self.store
        if not store.config.shared:
            return 0        # a local store's recovery deletes them at open (one writer)
        orphans = store.packs.unnamed_objects(lambda: set(store.catalog.reader().content.packs()),
                                              time.time() - self.options.grace)
        for pid in orphans:
            log.info("gc deletes pack object %08d: older than the grace period and named by no commit", pid)
            store.packs.delete(pid)
        self.result.orphan_objects_deleted += len(orphans)
        return len(orphans)

    def _after_commit(self, dropped_blocks, deleted_packs) -> None:
        after_commit(self.store, dropped_blocks, deleted_packs)
        self.result.packs_deleted += len(deleted_packs)

    # -- 2. compact ------------------------------------------------------------------------
    def plan(self) -> list[tuple[int, int, float]]:
        liveness = self.store.catalog.reader().maintenance.pack_liveness(self.options.reencode_below)
        self.aged = aged_packs(liveness, self.options)
        return plan_compaction(liveness, self.options)

    def compact_step(self, pack_id: int, budget: int | None = None) -> bool:
        """Move up to ``budget`` bytes of live blocks out of ``pack_id`` (offset order).

        Returns True when blocks remain in the pack (call again)."""
        store = self.store
        budget = self.options.step_bytes if budget is None else budget
        reader = store.catalog.reader()
        blocks = reader.maintenance.blocks_in_pack(pack_id)
        if not blocks:
            self._finish_pack(pack_id)
            return False
        if store.packs.write_position[0] == pack_id:
            store.packs.seal()                    # never append to the pack being emptied
        out = Appender(store)
        moved, reencoded = [], []
        reencode_below = 1.0 if pack_id in self.aged else self.options.reencode_below
        try:
            for b in blocks:
                if out.bytes and out.bytes + b.length > budget:
                    break
                chunks = reader.content.chunks_in_block(b.id)
                live = sum(c.length for c in chunks)
                frame = store.packs.read(pack_id, b.offset, b.length)
                new = None
                if b.raw_length and live < b.raw_length * reencode_below:
                    new = self._reencode(b, frame, chunks)
                if new is None:
                    pid, noff = out.append(frame)
                    moved.append(b._replace(pack_id=pid, offset=noff))
                    continue
                framed, used, dict_used, offsets = new
                new_bid = out.new_block_id()
                pid, noff = out.append(framed)
                reencoded.append((b.id, AgedBlock(b.created, new_bid, pid, noff, len(framed), live, used, dict_used),
                                  offsets))
            out.sync()
            with store.catalog.write(durable=True) as txn:
                out.record(txn)
                txn.maintenance.relocate_blocks(moved)
                for old_id, new_block, offsets in reencoded:
                    txn.maintenance.replace_block(old_id, new_block, offsets)
                deleted = drop_empty_packs(store, txn, [pack_id])
        except BaseException:
            out.undo()
            raise
        self.result.blocks_copied += len(moved) + len(reencoded)
        self.result.blocks_reencoded += len(reencoded)
        self.result.bytes_copied += out.bytes
        if deleted:
            self.result.packs_compacted += 1
        self._after_commit([r[0] for r in reencoded], deleted)
        return not deleted

    # -- 4. tidy the catalog ------------------------------------------------------------
    def tidy_step(self) -> bool:
        """One step of compacting the search index (when it is due and usable), then the
        catalog's free pages go back to the file system. True when more steps remain."""
        with self.store.catalog.write(durable=True) as txn:
            try:
                more = txn.search.statistics().state == "ok" and txn.search.tidy_step(TIDY_PAGES)
            except SearchIndexError as exc:          # the index's keeper reports and rebuilds it
                log.warning("gc leaves the search index as it is: %s", exc)
                more = False
            if not more:
                self.result.catalog_pages_released += txn.maintenance.release_free_pages()
        return more

    def _finish_pack(self, pack_id: int) -> None:
        if self.store.packs.write_position[0] == pack_id:
            self.store.packs.seal()
        with self.store.catalog.write(durable=True) as txn:
            deleted = txn.maintenance.drop_empty_packs([pack_id])
        self._after_commit([], deleted)

    def _reencode(self, block: AgedBlock, frame: bytes, chunks: list[ChunkInBlock]):
        """(framed, codec, dict id, [(chunk id, new offset)]) of the block's live chunks, or None
        when the block does not decode or a chunk fails its hash (then it is copied as is)."""
        store = self.store
        bid, dict_id = block.id, block.dict_id
        where = f"pack {block.pack_id:08d} offset {block.offset} (block {bid})"
        try:
            raw = codec.decode_block(frame, where, store.dictionaries)
        except IntegrityError as exc:
            log.warning("gc copies a damaged block as it is: %s", exc)
            return None
        parts, offsets, pos = [], [], 0
        for c in chunks:
            piece = raw[c.block_off:c.block_off + c.length]
            if len(piece) != c.length or chunk_hash(piece) != c.hash:
                log.warning("gc copies block %d as it is: chunk %s fails its SHA-256", bid, c.hash.hex())
                return None
            parts.append(piece)
            offsets.append((c.id, pos))
            pos += c.length
        new_raw = b"".join(parts)
        level = self._level_of(bid)
        if block.codec == codec.CODEC_FLAC:
            framed = _flac_copy(frame, new_raw, [(c.block_off, c.length) for c in chunks], level)
            if framed is not None:
                return framed, codec.CODEC_FLAC, 0, offsets
        zdict = None
        if block.codec == codec.CODEC_ZSTD_DICT and dict_id:
            try:
                zdict = store.dictionaries(dict_id)
            except IntegrityError:
                zdict, dict_id = None, 0
        framed, used = codec.encode_block(new_raw, level if block.codec != codec.CODEC_RAW else 0, zdict, dict_id)
        return framed, used, dict_id if used == codec.CODEC_ZSTD_DICT else 0, offsets

    def _level_of(self, bid: int) -> int:
        """The zstd level the block was last encoded with (recompression's, else the store's)."""
        level = self.store.catalog.reader().maintenance.recompressed_level(bid)
        return self.store.compress_level if level is None else level


def _flac_copy(frame: bytes, new_raw: bytes, kept: list[tuple[int, int]], level: int) -> bytes | None:
    """The live pieces ``kept`` of the FLAC block ``frame`` (joined: ``new_raw``) coded with FLAC
    again on the block's own sample grid (``audio_layout.trimmed_layout``), verified by decoding;
    None when that does not apply or is not smaller than zstd (then the copy is zstd)."""
    layout = trimmed_layout(frame, kept)
    if layout is None:
        return None
    framed = codec.encode_pcm_block(new_raw, layout.channels, layout.width, layout.lead, layout.pcm_len, level)
    if framed is None or len(framed) >= len(codec.encode_block(new_raw, level)[0]):
        return None
    return framed


def collect(store, options: GcOptions | None = None, *, progress=None, dry_run: bool = False) -> GcResult:
    """Run a full garbage collection on an open store; steps run in its persistence worker.

    ``progress(done_bytes, total_bytes)`` is called as compaction copies. With ``dry_run``
    nothing changes (the store may be read-only) and the result says what would be done."""
    options = options or GcOptions()
    maintenance = store.catalog.reader().maintenance
    if dry_run:
        result = GcResult(dry_run=True)
        result.stored_before = result.stored_after = maintenance.stored_bytes()
        cutoff = ns_ago(options.grace)
        result.chunks_reclaimed, result.chunk_bytes_reclaimed = maintenance.reclaimable(cutoff)
        live = maintenance.pack_liveness(options.reencode_below, reclaimed_before=cutoff)
        result.blocks_dropped = maintenance.blocks_emptied_by_reclaim(cutoff)
        result.packs_deleted = sum(1 for p in live if p.live == 0)
        result.compaction_plan = [p for p in plan_compaction(live, options) if p[2] > 0]
        return result
    with required_turn(store, "gc"):
        return _collect(store, options, progress)


def _collect(store, options: GcOptions, progress) -> GcResult:
    collector = Collector(store, options)
    collector.result.stored_before = store.catalog.reader().maintenance.stored_bytes()
    while store.run_in_worker(collector.reclaim_step):
        pass
    store.run_in_worker(collector.drop_orphan_objects)
    plan = store.run_in_worker(collector.plan)
    collector.result.compaction_plan = plan
    total = int(sum(size * share for _, size, share in plan))
    for pack_id, _, _ in plan:
        while store.run_in_worker(lambda: collector.compact_step(pack_id)):
            if progress:
                progress(min(collector.result.bytes_copied, total), total)
    if progress:
        progress(total, total)
    while store.run_in_worker(collector.tidy_step):
        pass
    collector.result.stored_after = store.catalog.reader().maintenance.stored_bytes()
    return collector.result


# -- in the daemon ----------------------------------------------------------------------------
class BackgroundGC:
    """An idle task of the persistence worker: one gc step whenever the queue is empty and no
    foreground read or write happened for ``quiet`` seconds; a full pass every ``interval``."""

    def __init__(self, store, options: GcOptions | None = None, *, interval: float = 300.0, quiet: float = 0.5):
        self.store = store
        self.options = options or GcOptions()
        self.interval = interval
        self.quiet = quiet
        self.collector = Collector(store, self.options)
        self._plan: list = []
        self._phase = "reclaim"
        self._turn = False
        self.passes = 0
        self.task = store.persister.add_idle_task(self.step, "gc", delay=min(interval, 60.0))

    def step(self) -> float:
        idle_for = time.monotonic() - self.store.last_activity
        if idle_for < self.quiet:
            return self.quiet - idle_for
        if not self._turn:
            # A pass holds the maintenance turn from its start to its end (another mount of a
            # shared store may be in the middle of one).
            self._turn = self.store.catalog.try_exclusive(MAINTENANCE)
            if not self._turn:
                return self.interval
        if self._phase == "reclaim":
            if self.collector.reclaim_step():
                return 0.0
            self.collector.drop_orphan_objects()
            self._plan = [p[0] for p in self.collector.plan()]
            self._phase = "compact"
            return 0.0
        if self._plan:
            if not self.collector.compact_step(self._plan[0]):
                self._plan.pop(0)
            return 0.0
        if self.collector.tidy_step():
            return 0.0
        self._phase = "reclaim"
        self.passes += 1
        self._release_turn()
        return self.interval

    def _release_turn(self) -> None:
        if self._turn:
            self._turn = False
            self.store.catalog.release_exclusive(MAINTENANCE)

    def statistics(self) -> dict:
        r = self.collector.result
        return {"passes": self.passes, "phase": self._phase, "packs_queued": len(self._plan),
                "chunks_reclaimed": r.chunks_reclaimed, "blocks_dropped": r.blocks_dropped,
                "packs_compacted": r.packs_compacted, "packs_deleted": r.packs_deleted,
                "bytes_copied": r.bytes_copied}

    def stop(self) -> None:
        self.store.persister.remove_idle_task(self.task)
        self._release_turn()


# -- command line -----------------------------------------------------------------------------


