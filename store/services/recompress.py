"""Background recompression of cold blocks, with trained dictionaries for small ones.

Writes land fast: the persistence worker frames new blocks at zstd level 3
(``Store.compress_level``). Data that has been cold for ``cold_age`` seconds
(default 10 minutes, by ``blocks.created``) is re-encoded at a high level
(default 19), oldest blocks first, which is oldest sessions first.

What makes it smaller than zstd -19 of each file on its own (measured by
``contrib/bench/compress_bench.py`` on generated 2-hour sessions; the numbers
are in its docstring):

- dedup: a chunk is stored once however many files and sessions hold it
  (identical screenshots, the unchanged head of a rewritten chunk file);
- blocks: neighbouring new chunks of one file form one frame of up to 1 MiB
  (``ingest.BLOCK_TARGET``), so a big JSON file compresses like the whole file;
- merging: the small text files of a session (large-object files, small chunk
  files; all but metadata.json) are merged into one block when cold
  (``prepare_merges``): they repeat each other (the transcription is the audio
  segments' text), which zstd exploits only inside one frame;
- audio: a block of a WAV file of integer PCM has its whole sample frames coded with FLAC
  (``codec.encode_pcm_block``, verified by decoding; ``audio_layout`` finds the sample format
  from the file's header); it keeps whichever of FLAC and zstd is smaller;
- a dictionary for the small blocks that stay alone (metadata.json; every
  small block with ``merge=False``): trained from the store's own such files
  (``store.dictionaries``), it gives each the shared context (keys, structure,
  recurring values) that a file compressed on its own lacks. Each is encoded
  with and without it and keeps the smaller. The dictionary's own bytes count
  as stored, so it is sized to its training data
  (``dictionary_training.dictionary_size``) and trained only from at least
  ``dictionary_training.MIN_SAMPLES`` files: it pays off from some dozens of sessions.

A block is re-encoded only when that saves at least ``MIN_GAIN``; otherwise
(PNG, compressed audio, already small) it is recorded as handled and left in place.

How it runs. Preparing (read, decode, verify every chunk's hash, encode) is
CPU work done outside the persistence worker: in the ``Compressor`` thread of
the daemon (niced to 19, throttled so that it uses at most ``cpu_share`` of a
core: after working ``t`` seconds it sleeps ``t * (1 / cpu_share - 1)``;
paused while foreground I/O is busy: while the persistence queue is not empty
or a read or write happened in the last ``quiet`` seconds,
``Store.last_activity``), or in a thread pool for ``sessionfs compress``.
The switch-over runs in the persistence worker (``Store.run_in_worker``, the
only writer of packs, blocks and chunks), a batch of blocks at a time:

1. the block must still be where it was read (gc may have moved it: then the
   work is dropped and done again later);
2. the new frames are appended to the write pack and fsynced;
3. one durable transaction points the blocks at their new frames (same block
   id, same decoded bytes, so cached blocks stay valid) and records them in
   ``recompressed``;
4. after the commit, packs left without blocks are deleted. Old frames in packs
   that still hold other blocks are dead bytes that gc compaction reclaims.

A crash before 3 leaves the old frames in use and the new bytes an orphan pack
or a torn tail (both removed at the next open); after 3 the new frames are
durable and in use.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass

from store.core import codec
from store.core.chunker import chunk_hash
from store.core.errors import IntegrityError
from store.core.layout import METADATA_FILE
from store.core.units import human_bytes
from store.backends.catalog.maintenance import AgedBlock
from .audio_layout import pcm_layout
from .dictionary_training import SMALL_BLOCK, ensure_dictionary, looks_like_text
from .exclusive import required_turn
from .gc import ns_ago
from .switch_over import Appender, after_commit, drop_empty_packs

log = logging.getLogger("sessionfs.recompress")

DEFAULT_LEVEL = 19
DEFAULT_COLD_AGE = 600.0
DEFAULT_CPU_SHARE = 0.25
#: Re-encode only when the new frame is at least this much smaller.
MIN_GAIN = 0.01
#: Merged blocks of a session's small files hold up to this many decoded bytes.
MERGE_TARGET = 1024 * 1024
#: Blocks switched over in one worker step (one fsync, one durable commit).
BATCH_BLOCKS = 64
BATCH_BYTES = 8 * 1024 * 1024


@dataclass
class CompressOptions:
    level: int = DEFAULT_LEVEL
    cold_age: float = DEFAULT_COLD_AGE      # seconds since a block was written
    cpu_share: float = DEFAULT_CPU_SHARE    # of one core, background only
    quiet: float = 0.2                      # seconds without foreground I/O before background work
    dictionary: bool = True
    merge: bool = True                      # merge a session's small text blocks (see prepare_merges)
    audio: bool = True                      # code WAV blocks with FLAC (see audio_layout)


@dataclass
class CompressResult:
    blocks: int = 0                 # handled (re-encoded or found not worth it)
    recompressed: int = 0           # re-encoded
    bytes_before: int = 0           # framed bytes of the handled blocks before
    bytes_after: int = 0            # ... and after
    dictionaries_trained: int = 0
    skipped_damaged: int = 0
    stored_before: int = 0
    stored_after: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        saved = self.bytes_before - self.bytes_after
        return (f"handled {self.blocks:,} blocks, re-encoded {self.recompressed:,}: {human_bytes(self.bytes_before)} -> "
                f"{human_bytes(self.bytes_after)} (saved {human_bytes(saved)}); trained {self.dictionaries_trained} "
                f"dictionar{'ies' if self.dictionaries_trained != 1 else 'y'}"
                + (f"; skipped {self.skipped_damaged} damaged blocks (run sessionfs verify --data)"
                   if self.skipped_damaged else "")
                + f"\nstored bytes: {human_bytes(self.stored_before)} -> {human_bytes(self.stored_after)}")


# -- choosing ---------------------------------------------------------------------------------
def candidates(view, cold_age: float, limit: int, after: tuple[int, int] = (-1, -1)) -> list[AgedBlock]:
    """Blocks cold for ``cold_age`` seconds and not yet handled, oldest first, after (created, id)."""
    return view.maintenance.recompress_candidates(ns_ago(cold_age), limit, after)


def pending(view, cold_age: float | None) -> tuple[int, int]:
    """(blocks, framed bytes) cold for ``cold_age`` seconds (None: of any age) and not yet handled."""
    return view.maintenance.pending(None if cold_age is None else ns_ago(cold_age))


# -- preparing (any thread) ---------------------------------------------------------------------
@dataclass
class Prepared:
    """A re-encoding of one block, or of several small blocks merged into one (``bases``)."""
    sources: list[tuple[int, int, int, int, int]]   # (block id, pack id, offset, framed length, created)
    framed: bytes | None            # None: not worth re-encoding (recorded as handled)
    codec: int = 0
    dict_id: int = 0
    raw_length: int = 0
    bases: list[int] | None = None  # merge: where each source's decoded bytes start in the new block

    @property
    def length(self) -> int:
        return sum(src[3] for src in self.sources)


def _decode_verified(store, row: AgedBlock) -> bytes | None:
    """The block's decoded bytes with every chunk's hash checked; None when damaged (left for
    verify to report: damaged data is never re-encoded, so damage is never hidden)."""
    where = f"pack {row.pack_id:08d} offset {row.offset} (block {row.id})"
    try:
        raw = codec.decode_block(store.packs.read(row.pack_id, row.offset, row.length), where, store.dictionaries)
    except IntegrityError as exc:
        log.warning("not recompressing a damaged block: %s", exc)
        return None
    view = memoryview(raw)
    for c in store.catalog.reader().content.chunks_in_block(row.id):
        if c.block_off + c.length > len(raw) or chunk_hash(view[c.block_off:c.block_off + c.length]) != c.hash:
            log.warning("not recompressing block %d: a chunk fails its SHA-256", row.id)
            return None
    return raw


def _source(row: AgedBlock) -> tuple[int, int, int, int, int]:
    return row.id, row.pack_id, row.offset, row.length, row.created


def prepare(store, row: AgedBlock, level: int, zdict: tuple[int, object] | None, audio: bool = True) -> Prepared | None:
    """Read, decode, verify and re-encode one block; None when it is damaged."""
    raw = _decode_verified(store, row)
    if raw is None:
        return None
    length = row.length
    best, best_codec, best_dict = None, 0, 0
    framed, used = codec.encode_block(raw, level)
    if used != codec.CODEC_RAW:
        best, best_codec, best_dict = framed, used, 0
    text = looks_like_text(raw)
    if zdict is not None and len(raw) <= SMALL_BLOCK and text:
        framed, used = codec.encode_block(raw, level, zdict[1], zdict[0])
        if used == codec.CODEC_ZSTD_DICT and (best is None or len(framed) < len(best)):
            best, best_codec, best_dict = framed, used, zdict[0]
    layout = pcm_layout(store, row.id, len(raw)) if audio and not text else None
    if layout is not None:
        framed = codec.encode_pcm_block(raw, layout.channels, layout.width, layout.lead, layout.pcm_len, level)
        if framed is not None and (best is None or len(framed) < len(best)):
            best, best_codec, best_dict = framed, codec.CODEC_FLAC, 0
    if best is None or len(best) > length * (1 - MIN_GAIN):
        return Prepared([_source(row)], None)
    return Prepared([_source(row)], best, best_codec, best_dict, len(raw))


def session_of_block(store, block_id: int) -> int | None:
    """The session directory (inode) whose files alone hold ``block_id``, or None."""
    owners = store.catalog.reader().maintenance.files_of_block(block_id)
    if len(owners) != 1:
        return None
    ino = owners[0]
    for _ in range(8):
        names = store.catalog.names_of(ino)
        if not names:
            return None
        parent = names[0][0]
        if parent == store.sessions_ino:
            return ino
        ino = parent
    return None


def mergeable(store, session_ino: int, cold_age: float) -> list[AgedBlock]:
    """The blocks of a session a merge may combine: small, cold, not yet handled, each held by
    one file only, which is not metadata.json (read on its own for session lists: it keeps a
    small block of its own, with the dictionary); in file order."""
    return store.catalog.reader().maintenance.mergeable_blocks(session_ino, SMALL_BLOCK, ns_ago(cold_age),
                                                               METADATA_FILE.encode())


def prepare_merges(store, rows: list[AgedBlock], level: int) -> tuple[list[Prepared], list[AgedBlock], int]:
    """Merge the small text blocks among ``rows`` (one session's, in file order) into blocks of up
    to MERGE_TARGET decoded bytes. Returns (merged, rows left to handle one by one, damaged rows).

    Why: the small files of a session repeat each other (the transcription is the audio
    segments' text; summaries quote both), which zstd can only exploit inside one frame. On
    generated sessions the small JSON files of a session take 113 KB compressed one by one at
    level 19 and 64 KB together. A read of one of them decodes the merged block (a few hundred
    KB, about a millisecond), which the block cache then keeps."""
    texts, rest, damaged = [], [], 0
    for row in rows:
        raw = _decode_verified(store, row)
        if raw is None:
            damaged += 1                # never touched
            continue
        (texts if looks_like_text(raw) else rest).append((row, raw))
    merged: list[Prepared] = []
    groups, cur, cur_len = [], [], 0
    for row, raw in texts:
        if cur and cur_len + len(raw) > MERGE_TARGET:
            groups.append(cur)
            cur, cur_len = [], 0
        cur.append((row, raw))
        cur_len += len(raw)
    if cur:
        groups.append(cur)
    for group in groups:
        if len(group) < 2:
            rest.extend(group)
            continue
        bases, pos = [], 0
        for _, raw in group:
            bases.append(pos)
            pos += len(raw)
        framed, used = codec.encode_block(b"".join(raw for _, raw in group), level)
        before = sum(row.length for row, _ in group)
        if used == codec.CODEC_RAW or len(framed) > before * (1 - MIN_GAIN):
            rest.extend(group)
            continue
        merged.append(Prepared([_source(row) for row, _ in group], framed, used, 0, pos, bases))
    return merged, [row for row, _ in rest], damaged


# -- switching over (persistence worker) -----------------------------------------------------------
def _still_at(store, block_id: int, pack_id: int, offset: int, length: int) -> bool:
    """True when the block's frame is still the one that was read (gc may have moved it)."""
    b = store.catalog.block(block_id)
    return b is not None and (b.pack_id, b.offset, b.length) == (pack_id, offset, length)


def switch_over(store, items: list[Prepared], level: int) -> tuple[int, int, int, int]:
    """Point the blocks at their new frames; returns (blocks handled, frames written, bytes
    before, bytes after).

    Runs in the persistence worker. Work on blocks that moved since they were read is dropped."""
    current = [p for p in items if all(_still_at(store, *src[:4]) for src in p.sources)]
    if not current:
        return 0, 0, 0, 0
    out = Appender(store)
    placed, dropped = [], []
    try:
        for p in current:
            if p.framed is not None:
                new_id = out.new_block_id() if p.bases is not None else p.sources[0][0]
                placed.append((p, new_id, *out.append(p.framed)))
        if placed:
            out.sync()
        now = time.time_ns()
        with store.catalog.write(durable=True) as txn:
            if placed:
                out.record(txn)
            maintenance = txn.maintenance
            for p, new_id, pid, off in placed:
                frame = AgedBlock(min(s[4] for s in p.sources), new_id, pid, off, len(p.framed), p.raw_length,
                                  p.codec, p.dict_id)
                if p.bases is None:         # same block, new frame: same id, same decoded bytes
                    maintenance.relocate_blocks([frame])
                    continue
                maintenance.merge_blocks(frame, [(src[0], base) for src, base in zip(p.sources, p.bases)])
                dropped.extend(src[0] for src in p.sources)
            handled = [(p.sources[0][0], p.length) for p in current if p.framed is None or p.bases is None]
            handled += [(new_id, p.length) for p, new_id, _, _ in placed if p.bases is not None]
            maintenance.mark_recompressed(handled, level, now)
            deleted = drop_empty_packs(store, txn, [s[1] for p, *_ in placed for s in p.sources])
    except BaseException:
        out.undo()
        raise
    if placed:
        after_commit(store, dropped, deleted)
    before = sum(p.length for p in current)
    after = sum(len(p.framed) if p.framed is not None else p.length for p in current)
    return sum(len(p.sources) for p in current), len(placed), before, after


# -- units of work -----------------------------------------------------------------------------------
def work_units(store, rows: list[AgedBlock], options: CompressOptions, seen_sessions: set,
               skip: set = frozenset()) -> list[tuple[str, object]]:
    """Split candidate rows into units: ("merge", the mergeable blocks of one session) the first
    time a small block of that session comes up, else ("one", row)."""
    units, taken = [], set()
    for row in rows:
        bid = row.id
        if bid in taken or bid in skip:
            continue
        if options.merge and row.raw_length <= SMALL_BLOCK:
            session = session_of_block(store, bid)
            if session is not None and session not in seen_sessions:
                seen_sessions.add(session)
                group = [g for g in mergeable(store, session, options.cold_age) if g.id not in skip]
                if len(group) >= 2:
                    units.append(("merge", group))
                    taken.update(g.id for g in group)
                    if bid in taken:
                        continue
        units.append(("one", row))
        taken.add(bid)
    return units


def run_unit(store, unit: tuple[str, object], options: CompressOptions, zdict) -> tuple[list[Prepared], list[int]]:
    """Prepare one unit; returns (prepared, ids of damaged blocks)."""
    kind, arg = unit
    rows = [arg] if kind == "one" else []
    out: list[Prepared] = []
    damaged: list[int] = []
    if kind == "merge":
        merged, rows, bad = prepare_merges(store, arg, options.level)
        out.extend(merged)
        if bad:
            ok = {s[0] for p in merged for s in p.sources} | {r.id for r in rows}
            damaged.extend(r.id for r in arg if r.id not in ok)
    for row in rows:
        p = prepare(store, row, options.level, zdict, options.audio)
        if p is None:
            damaged.append(row.id)
        else:
            out.append(p)
    return out, damaged


def _unit_bytes(unit) -> int:
    kind, arg = unit
    return arg.length if kind == "one" else sum(r.length for r in arg)


# -- offline ---------------------------------------------------------------------------------------
def compress(store, options: CompressOptions | None = None, *, progress=None, threads: int | None = None,
             stop: threading.Event | None = None) -> CompressResult:
    """Recompress every cold block of an open writable store (``sessionfs compress``).

    Encoding runs in ``threads`` threads (zstd releases the GIL), switch-overs in the
    persistence worker. ``progress(done_bytes, total_bytes)`` as blocks are handled."""
    with required_turn(store, "compress"):
        return _compress(store, options or CompressOptions(cold_age=0), progress, threads, stop)


def _compress(store, options: CompressOptions, progress, threads: int | None,
              stop: threading.Event | None) -> CompressResult:
    result = CompressResult()
    view = store.catalog.reader()
    result.stored_before = view.maintenance.stored_bytes()
    zdict, trained = ensure_dictionary(store, options)
    result.dictionaries_trained += trained
    total = pending(view, options.cold_age)[1]
    done = 0
    threads = threads or os.cpu_count() or 1
    after = (-1, -1)
    seen_sessions: set = set()
    damaged: set = set()

    def switch(batch: list[Prepared]) -> None:
        account(result, store.run_in_worker(lambda: switch_over(store, batch, options.level)))

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        while not (stop and stop.is_set()):
            rows = candidates(store.catalog.reader(), options.cold_age, BATCH_BLOCKS, after)
            if not rows:
                break
            after = (rows[-1].created, rows[-1].id)
            units = work_units(store, rows, options, seen_sessions, damaged)
            batch: list[Prepared] = []
            for unit, (prepared, bad) in zip(units, pool.map(lambda u: run_unit(store, u, options, zdict), units)):
                done += _unit_bytes(unit)
                damaged.update(bad)
                batch.extend(prepared)
                if sum(len(x.framed or b"") for x in batch) >= BATCH_BYTES:   # bound each switch-over
                    switch(batch)
                    batch = []
            if batch:
                switch(batch)
            if progress:
                progress(min(done, total), total)
    result.skipped_damaged = len(damaged)
    result.stored_after = store.catalog.reader().maintenance.stored_bytes()
    return result


def account(result: CompressResult, counts: tuple[int, int, int, int]) -> None:
    handled, placed, before, after = counts
    result.blocks += handled
    result.recompressed += placed
    result.bytes_before += before
    result.bytes_after += after
