"""Contracts of the catalog interface (store.backends.catalog) that the store's own tests do
not pin down, on every implementation (SQLite, PostgreSQL): errors of the database become
store errors naming the operation, every write transaction reports what it changed, and
readdir cookies resume a listing."""

from __future__ import annotations

import os
import sqlite3
import stat
import time

import psycopg
import pytest

from catalogs import catalog, pg_url, postgres  # noqa: F401 - fixtures
from store.backends.catalog.rows import Changes
from store.core.errors import ConflictError, StoreError

UID, GID = os.getuid(), os.getgid()
REG = stat.S_IFREG | 0o644


def sessions(catalog) -> int:
    return int(catalog.meta("sessions_ino"))


def make(catalog, name: bytes, mode: int = REG) -> int:
    with catalog.write() as view:
        return view.tree.make_node(sessions(catalog), name, mode, UID, GID, time.time_ns()).id


def test_a_database_error_in_a_write_becomes_a_store_error_and_rolls_back(catalog):
    block = (10_000, 1, 0, 10, 10, 0, 0, 0)
    with pytest.raises(ConflictError) as caught:
        with catalog.write() as view:
            view.content.add_blocks([block])
            view.content.add_blocks([block])          # the same id again: refused by the database
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value.__cause__, (sqlite3.Error, psycopg.Error))
    assert str(caught.value).startswith("catalog: add blocks failed: "), caught.value
    assert "unique" in str(caught.value).lower(), caught.value
    assert catalog.reader().content.block(10_000) is None      # the first insert went too
    with catalog.write() as view:                               # and the writer still works
        view.content.add_blocks([block])
    assert catalog.reader().content.block(10_000).length == 10


def test_a_taken_dictionary_id_is_a_conflict_and_keeps_the_first(catalog):
    with catalog.write() as view:
        view.maintenance.add_dictionary(1, b"first", 16, 5, 20)
    with pytest.raises(ConflictError, match="add dictionary"):
        with catalog.write() as view:
            view.maintenance.add_dictionary(1, b"second", 16, 6, 40)
    assert catalog.reader().maintenance.dictionary(1) == b"first"


def test_every_write_transaction_reports_the_inodes_and_contents_it_changed(catalog):
    heard: list[Changes] = []
    catalog.add_commit_hook(heard.append)
    ino = make(catalog, b"f")
    assert ino in heard[-1].inodes and sessions(catalog) in heard[-1].inodes
    assert not heard[-1].contents and not heard[-1].everything
    now = time.time_ns()
    with catalog.write() as view:
        view.content.add_blocks([(7, 1, 0, 10, 5000, 0, 0, now)])
        view.content.add_chunks([(7, b"c" * 32, 5000, 7, 0)], now)
        view.content.commit_file(ino, [(0, 5000, 7)], size=5000, mtime_ns=now, ctime_ns=now, now=now)
    assert ino in heard[-1].contents and ino in heard[-1].inodes
    before = len(heard)
    with catalog.write():
        pass                                                          # changed nothing
    assert len(heard) == before
    with pytest.raises(RuntimeError):
        with catalog.write() as view:
            view.tree.set_attrs(ino, time.time_ns(), mode=0o600)
            raise RuntimeError("rolled back")
    assert ino in heard[-1].inodes          # reported even when rolled back: nothing stale survives
    assert stat.S_IMODE(catalog.inode(ino).mode) == 0o644
    with catalog.write() as view:
        view.tree.unlink(sessions(catalog), b"f", now)
        view.tree.delete_inode(ino, now)
        view.maintenance.reclaim_chunks(now + 1, 10)                  # a chunk went: any size may change
    assert heard[-1].everything and ino in heard[-1].contents
    assert catalog.reader().meta.totals()[0]["unreferenced_bytes"] == 0


def test_the_reads_a_mount_makes_per_file_come_whole_in_one_statement(catalog):
    """``entry`` is lookup + inode + data bytes, ``locations`` carry their blocks' rows, and
    ``chunks_by_hash`` finds many chunks at once: what the separate reads give."""
    ino = make(catalog, b"f")
    now = time.time_ns()
    with catalog.write() as view:
        view.content.add_blocks([(7, 1, 0, 10, 5300, 0, 0, now)])
        view.content.add_chunks([(7, b"c" * 32, 5000, 7, 0), (8, b"d" * 32, 300, 7, 5000)], now)
        view.content.commit_file(ino, [(0, 5000, 7), (9000, 300, 8)], size=9300, mtime_ns=now, ctime_ns=now, now=now)
    view = catalog.reader()
    assert view.tree.entry(sessions(catalog), b"f") == (view.tree.inode(ino), 5300)
    assert view.content.data_bytes([ino]) == {ino: 5300}
    assert view.tree.entry(sessions(catalog), b"g") is None
    assert [loc.block for loc in view.content.all_locations(ino)] == [view.content.block(7)] * 2
    assert view.content.chunks_by_hash([b"c" * 32, b"e" * 32, b"d" * 32]) == {b"c" * 32: (7, 5000),
                                                                               b"d" * 32: (8, 300)}


def test_readdir_cookies_resume_a_listing_without_skipping_or_repeating(catalog):
    d = sessions(catalog)
    for name in (b"a", b"b", b"c"):
        make(catalog, name)
    first = catalog.readdir(d, 0, 2)
    assert [n for _, n, _ in first] == [b"a", b"b"]
    with catalog.write() as view:
        view.tree.unlink(d, b"a", time.time_ns())
    make(catalog, b"d")
    rest = catalog.readdir(d, first[-1][0], 10)
    assert [n for _, n, _ in rest] == [b"c", b"d"]
    cookies = [c for c, _, _ in catalog.readdir(d, 0, 10)]
    assert cookies == sorted(cookies) and len(set(cookies)) == len(cookies)


def test_inode_count_counts_every_kind_of_inode(catalog):
    before = catalog.reader().tree.count_inodes()
    for name in (b"x", b"y"):
        make(catalog, name)
    make(catalog, b"dir", stat.S_IFDIR | 0o755)
    make(catalog, b"link", stat.S_IFLNK | 0o777)
    assert catalog.reader().tree.count_inodes() == before + 4
    with catalog.write() as view:
        x = view.tree.unlink(sessions(catalog), b"x", time.time_ns()).id
        assert not view.tree.delete_if_unlinked(catalog.lookup(sessions(catalog), b"y", view), time.time_ns())
    assert catalog.reader().tree.count_inodes() == before + 4       # unlinked, not deleted: still an inode
    assert catalog.reader().tree.unlinked_inodes() == [x]
    with catalog.write() as view:
        assert view.tree.delete_if_unlinked(x, time.time_ns())
    assert catalog.reader().tree.count_inodes() == before + 3


def test_totals_follow_every_change_and_agree_with_a_recount(catalog):
    d = sessions(catalog)
    now = time.time_ns()
    a, b = make(catalog, b"a"), make(catalog, b"b")
    with catalog.write() as view:
        view.content.record_packs([1], {1: 300}, 1, now)
        view.content.add_blocks([(1, 1, 0, 100, 1000, 0, 0, now), (2, 1, 100, 200, 2000, 0, 0, now)])
        view.content.add_chunks([(1, b"1" * 32, 1000, 1, 0), (2, b"2" * 32, 2000, 2, 0)], now)
        view.content.commit_file(a, [(0, 1000, 1), (1000, 2000, 2)], size=3000, mtime_ns=now, ctime_ns=now, now=now)
        view.content.commit_file(b, [(0, 1000, 1)], size=1000, mtime_ns=now, ctime_ns=now, now=now)
        view.maintenance.mark_recompressed([(2, 250)], 19, now)
        view.audit.record_lost_found(a, "sessions/a", "test", [(0, 10)], now)
        view.audit.record_lost_found(a, "sessions/a", "test", [(10, 20)], now)
    totals = catalog.reader().meta.totals()[0]
    assert (totals["files"], totals["logical_bytes"], totals["referenced_bytes"]) == (2, 4000, 4000)
    assert (totals["unique_bytes"], totals["blocks"], totals["block_bytes"], totals["pack_bytes"]) == (3000, 2, 300, 300)
    assert (totals["recompressed_blocks"], totals["recompress_bytes_before"], totals["lost_files"]) == (1, 250, 1)
    with catalog.write() as view:
        view.tree.unlink(d, b"a", now)
        view.tree.delete_inode(a, now)
        view.audit.prune_lost_found()
    totals = catalog.reader().meta.totals()[0]
    assert (totals["files"], totals["referenced_bytes"], totals["unreferenced_bytes"]) == (1, 1000, 2000)
    assert totals["lost_files"] == 0
    with catalog.reader().snapshot() as view:
        assert view.audit.counter_disagreements() == {}


def test_writers_sharing_a_catalog_never_take_the_same_id(catalog):
    """Two id allocators on one catalog (two mounts' workers) interleave ranges without a
    collision; ids given back after a failed batch are reused by their own writer only, and
    an id a repair wrote is never handed out."""
    from store.engine.ids import RANGE, IdRanges

    def reserve(kind, count, floor):
        with catalog.write() as view:
            return view.content.reserve_ids(kind, count, floor)

    a, b = IdRanges(reserve), IdRanges(reserve)
    taken = [w.take("chunk") for _ in range(RANGE["chunk"] + 5) for w in (a, b)]
    assert len(set(taken)) == len(taken)
    a.take("block")
    mark = a.mark()
    lost = [a.take("block") for _ in range(3)]
    a.restore(mark)
    assert [a.take("block") for _ in range(3)] == lost
    assert not set(lost) & {b.take("block") for _ in range(RANGE["block"] + 3)}
    nxt = a.peek("pack")
    a.skip_past("pack", nxt + 100)
    assert a.take("pack") > nxt + 100
    assert catalog.reader().content.packs() == {}   # reserving writes no pack rows
    with catalog.write() as view:                   # an id a repair wrote is never handed out
        view.audit.tombstone_chunk(max(taken) + 10, 1, 0)
    assert reserve("chunk", 1, 1) > max(taken) + 10
