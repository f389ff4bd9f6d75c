"""Names and small files served from memory (store.engine.dir_cache, the attribute cache's
locations, ``Store.cached_read``), and that nothing cached outlives a change.

test_attr_cache's random sequence of changes checks every cached name against the catalog
file after each step, as it checks attributes. The mount tests change names and contents
behind the kernel and read them through the mount, where a stale entry would show a missing
name, a wrong file, or old bytes, and check that a mount warms its sessions' metadata.
"""

from __future__ import annotations

import errno
import os
import time

import orjson
import pytest

from mounting import FUSE_AVAILABLE, served
from store import Store
from store.backends.catalog.rows import Changes
from store.core.errors import FsError
from store.engine.dir_cache import ABSENT, MAX_UNKNOWN, DirCache



# ---------------------------------------------------------------- the cache alone
def test_a_directory_filled_across_a_change_of_names_is_not_kept():
    cache = DirCache()
    epoch = cache.epoch
    cache.changed(Changes(entries=frozenset({(5, b"a")})))
    cache.fill_dir(epoch, 5, {b"a": 9})
    assert cache.entry(5, b"a") is None and not cache.listed(5)
    cache.changed(Changes(inodes=frozenset({5}), contents=frozenset({9})))   # no names: kept
    cache.fill_dir(epoch + 1, 5, {b"a": 9})
    assert cache.entry(5, b"a") == 9 and cache.entry(5, b"b") == ABSENT


def test_a_changed_name_is_unknown_until_read_again():
    cache = DirCache()
    cache.fill_dir(cache.epoch, 5, {b"a": 9, b"b": 10})
    cache.changed(Changes(entries=frozenset({(5, b"a"), (5, b"c"), (6, b"a")})))
    assert (cache.entry(5, b"a"), cache.entry(5, b"c"), cache.entry(5, b"b")) == (None, None, 10)
    epoch = cache.epoch
    cache.fill_name(epoch, 5, b"c", 11)
    cache.fill_name(epoch, 5, b"a", ABSENT)
    assert (cache.entry(5, b"a"), cache.entry(5, b"c")) == (ABSENT, 11)
    cache.fill_name(epoch, 5, b"b", 99)          # not unknown: a fill never overrides a known name
    assert cache.entry(5, b"b") == 10
    cache.changed(Changes(entries=frozenset((5, b"n%d" % i) for i in range(MAX_UNKNOWN + 1))))
    assert not cache.listed(5)
    cache.fill_dir(cache.epoch, 5, {b"a": 9})
    cache.changed(Changes(everything=True))
    assert not cache.listed(5)


def test_the_cache_is_bounded_and_capacity_zero_keeps_nothing():
    cache = DirCache(capacity=10, largest=6)
    cache.fill_dir(cache.epoch, 1, {b"%d" % i: i + 100 for i in range(7)})   # larger than ``largest``
    assert not cache.listed(1) and cache.too_large(1)      # remembered: not listed at every miss
    for parent in (2, 3, 4):
        cache.fill_dir(cache.epoch, parent, {b"%d" % i: i + 100 for i in range(4)})
    assert [cache.listed(p) for p in (2, 3, 4)] == [False, True, True]
    assert cache.statistics().names == 8
    cache.changed(Changes(everything=True))
    assert not cache.too_large(1)
    off = DirCache(capacity=0)
    off.fill_dir(off.epoch, 1, {})
    assert off.entry(1, b"a") is None


# ---------------------------------------------------------------- against the catalog
def test_a_small_file_read_from_memory_is_its_current_content(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    try:
        store.write_files({"sessions/s1/metadata.json": b'{"v": 1}'})
        store.settle()
        ino = store.resolve("sessions/s1/metadata.json")
        assert store.cached_read(ino, 0, 4096) is None          # nothing located yet
        assert store.read(ino, 0, 4096) == b'{"v": 1}'
        assert store.cached_read(ino, 0, 4096) == b'{"v": 1}'
        assert store.cached_read(ino, 2, 3) == b'v":'
        store.write(ino, 1, b"XY")                                # pending writes: not from memory
        assert store.cached_read(ino, 0, 4096) is None
        store.fsync(ino)
        assert store.read(ino, 0, 4096) == b'{XY": 1}'
        assert store.cached_read(ino, 0, 4096) == b'{XY": 1}'
        store.write_files({"sessions/s1/metadata.json": b'{"v": 2}'})
        store.settle()
        assert store.cached_read(ino, 0, 4096) in (None, b'{"v": 2}')
        store.setattr(ino, size=20)                               # a hole past the data
        assert store.cached_read(ino, 0, 4096) is None
        store.fsync(ino)
        assert store.read(ino, 0, 4096) == b'{"v": 2}' + bytes(12)
        assert store.cached_read(ino, 0, 4096) == b'{"v": 2}' + bytes(12)
    finally:
        store.close()


def test_lookups_in_a_directory_too_large_to_cache_read_single_names(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    try:
        store.dirs = DirCache(largest=4)
        store.write_files({f"sessions/s1/f{i}": b"%d" % i for i in range(6)})
        store.settle()
        s1 = store.resolve("sessions/s1")
        assert store.lookup(s1, b"f5").size == 1
        assert store.dirs.too_large(s1) and store.cached_entry(s1, b"f5") is None
        store.write_files({"sessions/s1/f5": None, "sessions/s1/g": b"gg"})
        store.settle()
        assert store.lookup(s1, b"g").size == 2
        with pytest.raises(FsError) as exc:
            store.lookup(s1, b"f5")
        assert exc.value.errno == errno.ENOENT
    finally:
        store.close()


# ---------------------------------------------------------------- through the mount
def test_names_and_contents_changed_behind_the_kernel_show_through_the_mount(tmp_path):
    """The session API (no kernel) creates, rewrites and removes names, and moves a directory,
    in directories the mount answers from memory: each change shows at once, never a name that
    is gone, a missing one, or old bytes."""
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    store = Store.open(tmp_path / "s", create=True)
    try:
        with served(store, tmp_path / "mnt") as mnt:
            s1 = mnt / "sessions" / "s1"
            s1.mkdir()
            (s1 / "metadata.json").write_bytes(b'{"v": 0}')
            for n in range(1, 4):
                assert (s1 / "metadata.json").read_bytes() == b'{"v": %d}' % (n - 1)
                assert (s1 / "metadata.json").read_bytes() == b'{"v": %d}' % (n - 1)   # from memory
                assert not (s1 / f"new-{n}.json").exists()
                store.write_files({"sessions/s1/metadata.json": b'{"v": %d}' % n,
                                   f"sessions/s1/new-{n}.json": b"%d" % n})
                store.settle()
                assert (s1 / f"new-{n}.json").read_bytes() == b"%d" % n
                assert (s1 / "metadata.json").read_bytes() == b'{"v": %d}' % n
            store.write_files({"sessions/s1/new-1.json": None})
            store.settle()
            assert not (s1 / "new-1.json").exists()
            assert sorted(os.listdir(s1)) == ["metadata.json", "new-2.json", "new-3.json"]
            sessions = store.resolve("sessions")
            store.rename(sessions, b"s1", sessions, b"s9")            # behind the kernel, as a session rename
            store.settle()
            time.sleep(0.1)
            assert (mnt / "sessions" / "s9" / "new-2.json").read_bytes() == b"2"
            assert sorted(os.listdir(mnt / "sessions")) == ["s9"]
    finally:
        store.close()


def test_a_mount_warms_the_metadata_of_its_sessions(tmp_path):
    """After a mount, the warm-up loads each session's names and metadata.json into memory:
    the mount then answers their lookups and reads without a query (and the right bytes)."""
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    store = Store.open(tmp_path / "s", create=True)
    try:
        meta = {f"s{i}": b'{"id": "s%d", "title": "%s"}' % (i, b"x" * i) for i in range(12)}
        store.write_files({f"sessions/{sid}/metadata.json": data for sid, data in meta.items()})
        store.write_files({"sessions/s3/summary.json": b"{}"})
        store.settle()
        with served(store, tmp_path / "mnt") as mnt:
            deadline = time.monotonic() + 60
            while (warm := orjson.loads((mnt / ".sessionfs" / "stats.json").read_bytes())["warmup"])["state"] != "done":
                assert time.monotonic() < deadline, f"the warm-up did not finish: {warm}"
                time.sleep(0.05)
            assert warm["sessions"] == 12
            sessions = store.resolve("sessions")
            for sid, data in meta.items():
                ino = store.cached_entry(sessions, sid.encode())
                meta_ino = store.cached_entry(ino, b"metadata.json")
                assert store.cached_entry(ino, b"nothing-here") == ABSENT
                assert store.cached_read(meta_ino, 0, 4096) == data
                assert (mnt / "sessions" / sid / "metadata.json").read_bytes() == data
    finally:
        store.close()
