"""Pure unit tests of the store's building blocks: no disk, no catalog.

IntervalSet (against a set-of-ints model), rewrite.plan_commit (which chunks a
commit keeps and which ranges it rebuilds), the block codec (round trips and
every refusal, decompression bombs included), the streaming chunker (same cuts
as the whole buffer) and the byte-bounded LRU.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import tracemalloc

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.core import chunker
from store.core import codec
from store.engine.cache import ByteLRU
from store.core.errors import IntegrityError
from store.core.intervals import IntervalSet, split_by
from store.engine.overlay import Overlay
from store.engine.persist import PathGroup, Persister
from store.core.rewrite import Extent, plan_commit

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- IntervalSet
def as_set(iv: IntervalSet) -> set[int]:
    return {p for s, e in iv for p in range(s, e)}


def runs(points: set[int], lo: int | None = None, hi: int | None = None) -> list[tuple[int, int]]:
    """Maximal runs of consecutive ints of ``points`` (optionally clipped to [lo, hi))."""
    pts = sorted(p for p in points if (lo is None or p >= lo) and (hi is None or p < hi))
    out: list[list[int]] = []
    for p in pts:
        if out and out[-1][1] == p:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return [tuple(r) for r in out]


def check_invariants(iv: IntervalSet) -> None:
    spans = list(iv)
    for s, e in spans:
        assert s < e, spans
    for (_, e1), (s2, _) in zip(spans, spans[1:]):
        assert e1 < s2, f"not disjoint and non-adjacent: {spans}"


def test_interval_add_merges_overlapping_and_touching():
    iv = IntervalSet()
    iv.add(10, 20)
    iv.add(30, 40)
    assert list(iv) == [(10, 20), (30, 40)]
    iv.add(20, 25)                      # touching: merged
    assert list(iv) == [(10, 25), (30, 40)]
    iv.add(5, 35)                       # swallows both
    assert list(iv) == [(5, 40)]
    iv.add(50, 50)                      # empty: ignored
    iv.add(60, 55)                      # reversed: ignored
    assert list(iv) == [(5, 40)]
    assert iv.total() == 35 and len(iv) == 1


def test_interval_remove_splits_and_trims():
    iv = IntervalSet([(0, 100)])
    iv.remove(40, 60)
    assert list(iv) == [(0, 40), (60, 100)]
    iv.remove(0, 10)
    iv.remove(90, 200)
    assert list(iv) == [(10, 40), (60, 90)]
    iv.remove(40, 60)                   # exactly the gap: nothing happens
    assert list(iv) == [(10, 40), (60, 90)]
    iv.remove(0, 1000)
    assert list(iv) == [] and iv.total() == 0


def test_interval_overlapping_intersects_and_split_by():
    iv = IntervalSet([(10, 20), (30, 40)])
    assert iv.overlapping(0, 100) == [(10, 20), (30, 40)]
    assert iv.overlapping(15, 35) == [(15, 20), (30, 35)]
    assert iv.overlapping(20, 30) == []
    assert not iv.intersects(20, 30) and iv.intersects(19, 30) and iv.intersects(20, 31)
    assert split_by(0, 50, iv) == [(0, 10, False), (10, 20, True), (20, 30, False), (30, 40, True),
                                   (40, 50, False)]
    assert split_by(12, 18, iv) == [(12, 18, True)]
    assert split_by(5, 5, iv) == []
    assert IntervalSet([(1, 2)]) == IntervalSet([(1, 2)]) and IntervalSet([(1, 2)]) != IntervalSet([(1, 3)])


ops = st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 120), st.integers(0, 120)),
               max_size=40)


@FAST
@given(ops, st.integers(0, 130), st.integers(0, 130))
def test_interval_set_matches_set_of_ints_model(operations, qs, qe):
    iv = IntervalSet()
    model: set[int] = set()
    for op, s, e in operations:
        if op == "add":
            iv.add(s, e)
            model |= set(range(s, e))
        else:
            iv.remove(s, e)
            model -= set(range(s, e))
        check_invariants(iv)
        assert as_set(iv) == model
    assert list(iv) == runs(model)
    assert iv.total() == len(model)
    assert iv.overlapping(qs, qe) == runs(model, qs, qe)
    assert iv.intersects(qs, qe) == any(qs <= p < qe for p in model)
    pieces = split_by(qs, qe, iv)
    pos = qs
    for s, e, inside in pieces:
        assert s == pos and s < e
        assert all((p in model) == inside for p in range(s, e))
        pos = e
    assert pos == max(qs, qe) if qe > qs else pieces == []


# ---------------------------------------------------------------- plan_commit
def contiguous(n: int, size: int = 10) -> list[Extent]:
    return [Extent(i * size, size, i + 1) for i in range(n)]


def test_plan_append_keeps_all_but_last_chunk_and_rebuilds_tail():
    base = contiguous(10)                                   # file of 100 bytes
    keep, rebuild = plan_commit(base, 150, 100, IntervalSet([(100, 150)]))
    assert keep == base[:-1]
    assert rebuild == [(90, 150)]


def test_plan_middle_write_keeps_untouched_chunks():
    base = contiguous(10)
    keep, rebuild = plan_commit(base, 100, 100, IntervalSet([(45, 47)]))
    # the touched chunk [40, 50) and its neighbours (to resynchronise the cuts) are rebuilt
    assert rebuild == [(30, 60)]
    assert keep == base[:3] + base[6:]


def test_plan_no_change_keeps_everything():
    base = contiguous(5)
    assert plan_commit(base, 50, 50, IntervalSet()) == (base, [])


def test_plan_truncate_down_cuts_the_straddling_chunk():
    base = contiguous(10)
    keep, rebuild = plan_commit(base, 55, 55, IntervalSet())
    assert rebuild == [(40, 55)]                            # [50, 55) of the cut chunk, widened by [40, 50)
    assert keep == base[:4]


def test_plan_truncate_down_on_a_boundary():
    base = contiguous(10)
    keep, rebuild = plan_commit(base, 50, 50, IntervalSet())
    assert (keep, rebuild) == (base[:5], [])


def test_plan_truncate_up_keeps_everything_and_leaves_a_hole():
    base = contiguous(10)
    keep, rebuild = plan_commit(base, 1 << 40, 100, IntervalSet())
    assert (keep, rebuild) == (base, [])


def test_plan_floor_zeroes_what_was_truncated_away():
    base = contiguous(10)
    # truncated to 50, grown back to 100, then [90, 100) written: [50, 90) is a hole now.
    keep, rebuild = plan_commit(base, 100, 50, IntervalSet([(90, 100)]))
    assert rebuild == [(90, 100)]
    assert keep == base[:5]
    # truncated to 0 and rewritten: nothing of the old version survives
    keep, rebuild = plan_commit(base, 80, 0, IntervalSet([(0, 80)]))
    assert (keep, rebuild) == ([], [(0, 80)])


def test_plan_sparse_write_far_away_touches_nothing_else():
    base = contiguous(3)
    keep, rebuild = plan_commit(base, (1 << 40) + 1, 30, IntervalSet([(1 << 40, (1 << 40) + 1)]))
    assert keep == base and rebuild == [(1 << 40, (1 << 40) + 1)]


@st.composite
def commit_case(draw):
    """A committed file (extents with holes), then an overlay's (size, floor, dirty)."""
    n = draw(st.integers(0, 12))
    extents, pos = [], 0
    for i in range(n):
        pos += draw(st.sampled_from([0, 0, 0, 1, 7]))     # mostly contiguous, some holes
        length = draw(st.integers(1, 12))
        extents.append(Extent(pos, length, i + 1))
        pos += length
    old_size = pos + draw(st.integers(0, 10))
    floor = draw(st.integers(0, old_size))
    size = floor + draw(st.integers(0, 40))
    dirty = IntervalSet()
    for _ in range(draw(st.integers(0, 4))):
        s = draw(st.integers(0, max(0, size - 1)))
        e = draw(st.integers(s, size))
        dirty.add(s, e)
    return extents, old_size, size, floor, dirty


@FAST
@given(commit_case())
def test_plan_commit_properties(case):
    base, old_size, size, floor, dirty = case
    keep, rebuild = plan_commit(base, size, floor, dirty)
    # kept extents are base extents, untouched, wholly below the floor
    assert all(ext in base for ext in keep)
    for ext in keep:
        assert ext.end <= floor and not dirty.intersects(ext.off, ext.end)
    # rebuilt ranges are sorted, disjoint and inside the new file
    for (s1, e1), (s2, e2) in zip(rebuild, rebuild[1:]):
        assert e1 < s2
    for s, e in rebuild:
        assert 0 <= s < e <= size
    # kept extents and rebuilt ranges never overlap
    rb = IntervalSet(rebuild)
    for ext in keep:
        assert not rb.intersects(ext.off, ext.end), (ext, rebuild)
    # every dirty byte is rebuilt
    for s, e in dirty:
        assert rb.overlapping(s, e) == [(s, e)]

    # Reassembling the new version from (kept chunks + rebuilt ranges + holes) gives
    # exactly the overlay's view: dirty bytes new, below the floor the old bytes, else zeros.
    old = bytearray(old_size)
    for ext in base:
        old[ext.off:ext.end] = bytes([ext.chunk_id]) * ext.length
    expected = bytearray(size)
    for p in range(size):
        if dirty.intersects(p, p + 1):
            expected[p] = 0xFF
        elif p < floor:
            expected[p] = old[p]
    rebuilt = bytearray(size)
    for ext in keep:
        rebuilt[ext.off:ext.end] = old[ext.off:ext.end]
    for s, e in rebuild:
        rebuilt[s:e] = expected[s:e]
    assert rebuilt == expected


# ---------------------------------------------------------------- codec
def text_bytes(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    words = ("session screenshot analysis terminal editor python function the of and to "
             "focus review commit branch window").split()
    out = []
    size = 0
    while size < n:
        w = rnd.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out).encode()[:n]


def test_codec_round_trip_compresses_text():
    raw = text_bytes(200_000)
    framed, used = codec.encode_block(raw, 3)
    assert used == codec.CODEC_ZSTD
    assert len(framed) < len(raw) / 2
    assert codec.decode_block(framed, "t") == raw


def test_codec_raw_fallback_for_random_data():
    raw = os.urandom(100_000)
    framed, used = codec.encode_block(raw, 3)
    assert used == codec.CODEC_RAW
    assert len(framed) == codec.HEADER.size + len(raw)
    assert codec.decode_block(framed, "t") == raw


def test_codec_level_zero_and_empty_are_raw():
    raw = text_bytes(10_000)
    framed, used = codec.encode_block(raw, 0)
    assert used == codec.CODEC_RAW and codec.decode_block(framed, "t") == raw
    framed, used = codec.encode_block(b"", 3)
    assert used == codec.CODEC_RAW and codec.decode_block(framed, "t") == b""


def test_codec_dictionary_round_trip():
    zdict = zstandard.ZstdCompressionDict(text_bytes(20_000, seed=5), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    raw = text_bytes(5_000, seed=6)
    framed, used = codec.encode_block(raw, 3, zdict, dict_id=7)
    assert used == codec.CODEC_ZSTD_DICT
    _, dict_id, raw_len, _ = codec.parse_header(framed, "t")
    assert dict_id == 7 and raw_len == len(raw)
    assert codec.decode_block(framed, "t", lambda i: zdict if i == 7 else None) == raw
    with pytest.raises(IntegrityError, match="dictionary 7"):
        codec.decode_block(framed, "t")


@FAST
@given(st.binary(max_size=5000), st.integers(0, 6))
def test_codec_round_trip_any_bytes(raw, level):
    framed, used = codec.encode_block(raw, level)
    assert used in (codec.CODEC_RAW, codec.CODEC_ZSTD)
    assert codec.decode_block(framed, "t") == raw


def test_codec_refuses_oversized_input():
    with pytest.raises(ValueError):
        codec.encode_block(bytes(codec.MAX_BLOCK_RAW + 1))


def test_decode_refuses_bad_magic():
    framed, _ = codec.encode_block(text_bytes(5000))
    with pytest.raises(IntegrityError, match="magic"):
        codec.decode_block(b"XXXX" + framed[4:], "pack 1 offset 0")


def test_decode_refuses_truncated_header_and_payload():
    framed, _ = codec.encode_block(text_bytes(5000))
    with pytest.raises(IntegrityError, match="header truncated"):
        codec.decode_block(framed[:10], "here")
    with pytest.raises(IntegrityError, match="payload"):
        codec.decode_block(framed[:-1], "here")
    raw_framed, used = codec.encode_block(os.urandom(1000))
    assert used == codec.CODEC_RAW
    with pytest.raises(IntegrityError):
        codec.decode_block(raw_framed[:-5], "here")


def test_decode_refuses_unknown_codec_and_inconsistent_raw_block():
    framed, _ = codec.encode_block(os.urandom(100))
    bad = bytearray(framed)
    bad[4] = 9
    with pytest.raises(IntegrityError, match="unknown codec"):
        codec.decode_block(bytes(bad), "here")
    payload = os.urandom(100)
    lying = codec.HEADER.pack(codec.MAGIC, codec.CODEC_RAW, 0, 50, len(payload)) + payload
    with pytest.raises(IntegrityError):
        codec.decode_block(lying, "here")


def test_decode_error_names_the_location():
    with pytest.raises(IntegrityError, match="pack 00000003 offset 42"):
        codec.decode_block(b"NOPE" + bytes(20), "pack 00000003 offset 42")


ZEROS_100MB = 100 * 1024 * 1024


def _bomb(content_size: bool) -> bytes:
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=content_size)
    return cctx.compress(bytes(ZEROS_100MB))


@pytest.fixture(scope="module")
def bombs():
    return {True: _bomb(True), False: _bomb(False)}


@pytest.mark.parametrize("content_size", [True, False], ids=["frame-declares-size", "frame-size-unknown"])
def test_decode_refuses_bomb_claiming_to_be_small(bombs, content_size):
    frame = bombs[content_size]
    assert len(frame) < 100_000                          # 100 MB of zeros in a few KB
    framed = codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, 0, 4096, len(frame)) + frame
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError):
            codec.decode_block(framed, "bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the header promised 4 KiB: decoding may not inflate the 100 MB it really holds
    assert peak < 8 * 1024 * 1024, f"decoding the bomb allocated {peak} bytes"


def test_decode_refuses_header_claiming_huge(bombs):
    frame = bombs[True]
    framed = codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, 0, ZEROS_100MB, len(frame)) + frame
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match=str(codec.MAX_BLOCK_RAW)):
            codec.decode_block(framed, "bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_decode_refuses_frame_larger_than_header_within_limit():
    raw = bytes(2 * 1024 * 1024)
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    framed = codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, 0, 1024 * 1024, len(frame)) + frame
    with pytest.raises(IntegrityError):
        codec.decode_block(framed, "x")


@pytest.fixture(scope="module")
def zstd_block():
    raw = text_bytes(20_000, seed=3)
    framed, used = codec.encode_block(raw, 3)
    assert used == codec.CODEC_ZSTD
    return raw, framed


@FAST
@given(st.data())
def test_decode_any_bit_flip_in_zstd_block_is_detected(zstd_block, data):
    raw, framed = zstd_block
    bit = data.draw(st.integers(0, len(framed) * 8 - 1))
    bad = bytearray(framed)
    bad[bit // 8] ^= 1 << (bit % 8)
    try:
        out = codec.decode_block(bytes(bad), "flip")
    except IntegrityError:
        return
    assert out == raw          # e.g. the unused dict_id field: harmless, never wrong bytes


# ---------------------------------------------------------------- chunker
@pytest.fixture(scope="module")
def chunk_inputs():
    rnd = random.Random(11)
    return {
        "random": rnd.randbytes(1_500_000),
        "text": text_bytes(1_200_000, seed=2),
        "zeros": bytes(700_000),
        "periodic": b"0123456789abcdef" * 50_000,
    }


def pieces_of(buf: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(set(c for c in cuts if 0 < c < len(buf)))
    bounds = [0, *cuts, len(buf)]
    return [buf[a:b] for a, b in zip(bounds, bounds[1:])]


def test_cut_covers_buffer_within_size_bounds(chunk_inputs):
    for name, buf in chunk_inputs.items():
        spans = chunker.cut(buf)
        assert spans[0][0] == 0
        pos = 0
        for off, length in spans:
            assert off == pos
            pos += length
        assert pos == len(buf)
        for _, length in spans[:-1]:
            assert chunker.MIN_CHUNK <= length <= chunker.MAX_CHUNK, name
    assert chunker.cut(b"") == []
    assert list(chunker.cut_stream([])) == [] and list(chunker.cut_stream([b"", b""])) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["random", "text", "zeros", "periodic"]),
       st.lists(st.integers(1, 1_499_999), max_size=25),
       st.lists(st.integers(1, 300), max_size=5))
def test_cut_stream_equals_cutting_the_whole_buffer(chunk_inputs, name, cuts, tiny):
    buf = chunk_inputs[name]
    # some very small windows too (smaller than one chunk)
    extra = [c + d for c in cuts[:3] for d in tiny]
    whole = [buf[o:o + n] for o, n in chunker.cut(buf)]
    streamed = list(chunker.cut_stream(pieces_of(buf, cuts + extra) + [b""]))
    assert [len(c) for c in streamed] == [len(c) for c in whole]
    assert streamed == whole


def test_cut_stream_local_edit_changes_few_chunks(chunk_inputs):
    buf = chunk_inputs["text"]
    edited = buf[:600_000] + b" inserted record " + buf[600_000:]
    a = {chunker.chunk_hash(c) for c in chunker.cut_stream([buf])}
    b = [chunker.chunk_hash(c) for c in chunker.cut_stream([edited])]
    assert sum(h not in a for h in b) <= 3


def test_chunk_hash_and_is_zero():
    assert chunker.chunk_hash(b"abc") == hashlib.sha256(b"abc").digest()
    assert chunker.chunk_hash(memoryview(b"abc")) == hashlib.sha256(b"abc").digest()
    assert chunker.is_zero(bytes(1000)) and chunker.is_zero(b"")
    assert not chunker.is_zero(bytes(999) + b"\1") and not chunker.is_zero(b"\1" + bytes(999))


# ---------------------------------------------------------------- ByteLRU
def test_lru_bounds_and_evicts_least_recently_used():
    lru = ByteLRU(100)
    for k in "abcd":
        lru.put(k, bytes(25))
    assert lru.statistics().bytes_held == 100
    assert lru.get("a") is not None                # a becomes most recent
    lru.put("e", bytes(25))                         # evicts b, the least recent
    assert lru.get("b") is None
    assert all(lru.get(k) is not None for k in "acde")
    s = lru.statistics()
    assert s.bytes_held == 100 and s.entries == 4 and s.evictions == 1 and s.capacity_bytes == 100
    lru.put("f", bytes(20))
    lru.put("g", bytes(20))
    s = lru.statistics()
    assert s.bytes_held <= 100


def test_lru_statistics_count_hits_and_misses():
    lru = ByteLRU(1000)
    assert lru.get("x") is None
    lru.put("x", b"12345")
    assert lru.get("x") == b"12345"
    assert lru.get("x") == b"12345"
    s = lru.statistics()
    assert (s.hits, s.misses, s.entries, s.bytes_held) == (2, 1, 1, 5)
    assert s.as_dict()["hits"] == 2


def test_lru_does_not_keep_entries_over_a_quarter():
    lru = ByteLRU(1000)
    lru.put("small", bytes(10))
    lru.put("big", bytes(251))
    assert lru.get("big") is None and lru.get("small") is not None
    assert lru.statistics().bytes_held == 10
    loads = []
    assert lru.get_or_load("big2", lambda: loads.append(1) or bytes(300)) == bytes(300)
    assert lru.statistics().bytes_held == 10 and loads == [1]


def test_lru_replace_discard_clear_and_get_or_load():
    lru = ByteLRU(1000)
    lru.put("k", bytes(100))
    lru.put("k", bytes(30))
    assert lru.statistics().bytes_held == 30 and lru.statistics().entries == 1
    calls = []
    assert lru.get_or_load("j", lambda: calls.append(1) or b"v" * 10) == b"v" * 10
    assert lru.get_or_load("j", lambda: calls.append(1) or b"w" * 10) == b"v" * 10
    assert calls == [1]
    lru.discard("k")
    lru.discard("missing")
    assert lru.statistics().bytes_held == 10
    lru.clear()
    assert lru.statistics().bytes_held == 0 and lru.statistics().entries == 0
    zero = ByteLRU(0)
    zero.put("a", b"x")
    assert zero.get("a") is None and zero.statistics().bytes_held == 0


@FAST
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 60)), max_size=60), st.integers(0, 200))
def test_lru_never_exceeds_capacity(puts, capacity):
    lru = ByteLRU(capacity)
    for key, n in puts:
        lru.put(key, bytes(n))
        s = lru.statistics()
        assert s.bytes_held <= capacity
        held = [lru._data[k] for k in lru._data]
        assert s.bytes_held == sum(map(len, held))


# ---------------------------------------------------------------- persistence worker: group commit
def _recording_persister(gather: float) -> tuple[Persister, list[list]]:
    batches: list[list] = []
    p = Persister(lambda items, durable: batches.append([i.gen for i in items]), lambda: None, gather=gather)
    p.start()
    return p, batches


def test_a_burst_of_items_commits_as_one_batch_when_a_barrier_arrives():
    """With a window far longer than the test, only the barrier can end it: the ten groups
    commit together, and the barrier does not wait for the window."""
    p, batches = _recording_persister(gather=300.0)
    try:
        for gen in range(10):
            p.submit(PathGroup(gen, [(f"sessions/s/f{gen}", b"x")]))
        p.barrier(durable=False).wait(timeout=20)
        assert batches == [list(range(10))]
    finally:
        p.stop()


def test_stop_commits_what_is_gathering():
    p, batches = _recording_persister(gather=300.0)
    for gen in range(3):
        p.submit(PathGroup(gen, [(f"sessions/s/f{gen}", b"x")]))
    p.stop()
    assert batches == [[0, 1, 2]]


def test_without_a_window_items_commit_as_they_come():
    p, batches = _recording_persister(gather=0.0)
    try:
        for gen in range(3):
            p.submit(PathGroup(gen, [(f"sessions/s/f{gen}", b"x")]))
            p.barrier(durable=False).wait(timeout=20)
        assert batches == [[0], [1], [2]]
    finally:
        p.stop()


def test_with_bursts_a_lone_item_commits_at_once_and_items_queued_meanwhile_together():
    """A shared store's worker: an item queued while the worker is idle commits without the
    window (300 s would hold it until stop); those queued while that commit runs commit
    together after it."""
    release = threading.Event()
    batches: list[list] = []

    def commit(items, durable):
        batches.append([i.gen for i in items])
        if len(batches) == 1:
            release.wait(20)

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(batches) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    p = Persister(commit, lambda: None, gather=300.0, bursts=True)
    p.start()
    try:
        p.submit(PathGroup(0, [("sessions/s/f0", b"x")]))
        wait_for(1)
        assert batches == [[0]]
        for gen in range(1, 5):
            p.submit(PathGroup(gen, [(f"sessions/s/f{gen}", b"x")]))
        release.set()
        wait_for(2)
        assert batches == [[0], [1, 2, 3, 4]]
    finally:
        release.set()
        p.stop()


# ---------------------------------------------------------------- persistence worker: fsync of one file
def _overlay_persister(gather: float) -> tuple[Persister, list[tuple[list, bool]]]:
    """A worker recording each batch as ([(ino, seq) or group gen], durable)."""
    batches: list[tuple[list, bool]] = []
    p = Persister(lambda items, durable: batches.append(
        ([(i.ino, i.seq) if isinstance(i, Overlay) else i.gen for i in items], durable)), lambda: None,
        gather=gather)
    p.start()
    return p, batches


def test_fsync_of_a_file_commits_its_overlays_first_and_durably(tmp_path):
    """Files closed before it wait behind the fsync'd file, whose overlays keep their order; a
    small one joins the fsync's commit, a large one commits after it."""
    p, batches = _overlay_persister(gather=300.0)
    try:
        for seq, ino in enumerate([2, 3, 1, 3], start=1):
            ov = Overlay(tmp_path, seq, ino, 0)
            ov.write(0, bytes(3 * 1024 * 1024 if ino == 1 else 1000), 1)
            p.submit(ov)
        p.expedite(3).wait(timeout=20)
        assert batches[:2] == [([(3, 2)], False), ([(3, 4), (2, 1)], True)]
        p.barrier(durable=False).wait(timeout=20)
        assert [items for items, _ in batches[2:]] == [[(1, 3)]]
    finally:
        p.stop()


def test_fsync_of_a_file_behind_a_path_group_keeps_the_queue_order(tmp_path):
    """A path group may write the same file: what was queued before the fsync commits first."""
    p, batches = _overlay_persister(gather=300.0)
    try:
        p.submit(Overlay(tmp_path, 1, 1, 0))
        p.submit(PathGroup(7, [("sessions/s/f", b"x")]))
        p.submit(Overlay(tmp_path, 2, 3, 0))
        p.expedite(3).wait(timeout=20)
        assert [items for items, _ in batches] == [[(1, 1)], [7], [(3, 2)]] and batches[-1][1]
    finally:
        p.stop()
