"""Contracts of the catalog interface (store.backends.catalog) that the store's own tests do
not pin down: errors of the database become store errors naming the catalog, every write
transaction reports what it changed, and readdir cookies resume a listing."""

from __future__ import annotations

import os
import sqlite3
import stat
import time

import pytest

from store import Store
from store.backends.catalog.rows import Changes
from store.core.errors import ConflictError, StoreError

UID, GID = os.getuid(), os.getgid()
REG = stat.S_IFREG | 0o644


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "s", create=True)
    yield s
    s.close()


def test_a_database_error_in_a_write_becomes_a_store_error_and_rolls_back(store):
    block = (10_000, 1, 0, 10, 10, 0, 0, 0)
    with pytest.raises(ConflictError) as caught:
        with store.catalog.write() as view:
            view.content.add_blocks([block])
            view.content.add_blocks([block])          # the same id again: refused by the database
    assert isinstance(caught.value, StoreError) and isinstance(caught.value.__cause__, sqlite3.Error)
    assert str(caught.value).startswith("catalog: add blocks failed: UNIQUE constraint failed"), caught.value
    assert store.catalog.reader().content.block(10_000) is None      # the first insert went too
    with store.catalog.write() as view:                               # and the writer still works
        view.content.add_blocks([block])
    assert store.catalog.reader().content.block(10_000).length == 10


def test_every_write_transaction_reports_the_inodes_and_contents_it_changed(store):
    heard: list[Changes] = []
    store.catalog.add_commit_hook(heard.append)
    ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
    assert ino in heard[-1].inodes and store.sessions_ino in heard[-1].inodes
    assert not heard[-1].contents and not heard[-1].everything
    store.write(ino, 0, b"x" * 5000)
    store.fsync(ino)
    assert any(ino in c.contents for c in heard)
    before = len(heard)
    with store.catalog.write():
        pass                                                          # changed nothing
    assert len(heard) == before
    with pytest.raises(RuntimeError):
        with store.catalog.write() as view:
            view.tree.set_attrs(ino, time.time_ns(), mode=0o600)
            raise RuntimeError("rolled back")
    assert ino in heard[-1].inodes          # reported even when rolled back: nothing stale survives
    assert stat.S_IMODE(store.getattr(ino).mode) == 0o644


def test_readdir_cookies_resume_a_listing_without_skipping_or_repeating(store):
    d = store.sessions_ino
    for name in (b"a", b"b", b"c"):
        store.make_node(d, name, REG, UID, GID)
    first = store.readdir(d, 0, 2)
    assert [n for _, n, _ in first] == [b"a", b"b"]
    store.unlink(d, b"a")
    store.make_node(d, b"d", REG, UID, GID)
    rest = store.readdir(d, first[-1][0], 10)
    assert [n for _, n, _ in rest] == [b"c", b"d"]
    cookies = [c for c, _, _ in store.readdir(d, 0, 10)]
    assert cookies == sorted(cookies) and len(set(cookies)) == len(cookies)


def test_inode_count_counts_every_kind_of_inode(store):
    before = store.inode_count()
    for name in (b"x", b"y"):
        store.make_node(store.sessions_ino, name, REG, UID, GID)
    store.make_node(store.sessions_ino, b"dir", stat.S_IFDIR | 0o755, UID, GID)
    store.make_node(store.sessions_ino, b"link", stat.S_IFLNK | 0o777, UID, GID)
    assert store.inode_count() == before + 4
    store.unlink(store.sessions_ino, b"x")
    assert store.inode_count() == before + 3


def test_writers_sharing_a_catalog_never_take_the_same_id(store):
    """Two id allocators on one catalog (two mounts' workers) interleave ranges without a
    collision; ids given back after a failed batch are reused by their own writer only, and
    an id a repair wrote is never handed out."""
    from store.engine.ids import RANGE, IdRanges

    def reserve(kind, count, floor):
        with store.catalog.write() as view:
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
    assert store.catalog.reader().content.packs() == {}   # reserving writes no pack rows
