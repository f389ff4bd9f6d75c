"""What is cached about inodes and names, and that nothing cached outlives a change: the
in-memory attribute and directory caches (store.engine.attr_cache, dir_cache) with their
invalidation by the changes every catalog transaction reports, and the kernel's entries (negative ones included) for names created behind it.

The store tests compare every cached entry with a fresh read of the catalog file (its own
connection, no cache) after each step of a random sequence of namespace and content
changes; a change the triggers missed shows up as a stale entry.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import stat
import threading
import time

from checks import LEGACY_EXAMPLE
from store import Store
from store.backends.catalog.rows import Changes
from store.backends.catalog.sqlite.tree import INODE_COLUMNS
from store.engine.attr_cache import AttrCache
from store.engine.dir_cache import ABSENT
from store.core.errors import FsError

UID, GID = os.getuid(), os.getgid()
REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755


# ---------------------------------------------------------------- the cache alone
def test_a_fill_that_straddles_a_change_is_not_kept():
    cache = AttrCache()
    epoch = cache.epoch
    cache.changed(Changes(inodes=frozenset({7})))
    cache.fill_row(epoch, 7, ("stale",))
    assert cache.row(7) is None
    cache.fill_row(cache.epoch, 7, ("fresh",))
    assert cache.row(7) == ("fresh",)


def test_changes_drop_exactly_what_they_touched():
    cache = AttrCache()
    for ino in (1, 2, 3):
        cache.fill_row(cache.epoch, ino, (ino,))
    cache.fill_data_bytes(cache.epoch, {1: 10, 2: 20})
    cache.changed(Changes(inodes=frozenset({1}), contents=frozenset({2})))
    assert (cache.row(1), cache.row(2), cache.row(3)) == (None, (2,), (3,))
    assert (cache.data_bytes(1), cache.data_bytes(2)) == (10, None)
    cache.changed(Changes())
    assert cache.row(2) == (2,)
    cache.changed(Changes(everything=True))
    assert cache.row(2) is None and cache.data_bytes(1) is None


def test_the_cache_is_bounded_and_capacity_zero_keeps_nothing():
    cache = AttrCache(capacity=3)
    for ino in range(10):
        cache.fill_row(cache.epoch, ino, (ino,))
    assert cache.statistics().entries == 3
    assert [cache.row(i) for i in (6, 7, 8, 9)] == [None, (7,), (8,), (9,)]
    off = AttrCache(capacity=0)
    off.fill_row(off.epoch, 1, (1,))
    off.fill_data_bytes(off.epoch, {1: 1})
    assert off.row(1) is None and off.data_bytes(1) is None


# ---------------------------------------------------------------- against the catalog
def _truth(store: Store, ino: int) -> tuple[tuple | None, int]:
    db = sqlite3.connect(store.catalog.path)
    try:
        row = db.execute(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = ?", (ino,)).fetchone()
        data = db.execute("SELECT coalesce(sum(c.length), 0) FROM file_chunks f JOIN chunks c "
                          "ON c.id = f.chunk_id WHERE f.ino = ?", (ino,)).fetchone()[0]
    finally:
        db.close()
    return row, data


def _check_cached(store: Store, inos) -> int:
    """Every cached row and data count equals the catalog's; returns how many were cached."""
    store.settle()
    cached = 0
    for ino in inos:
        row, data = _truth(store, ino)
        hit = store.attrs.row(ino)
        if hit is not None:
            cached += 1
            assert hit == row, f"inode {ino}: cached {hit}, catalog {row}"
        n = store.attrs.data_bytes(ino)
        if n is not None:
            assert n == data, f"inode {ino}: cached {n} data bytes, catalog {data}"
    return cached


def _names(store: Store, parent: int) -> dict[bytes, int]:
    db = sqlite3.connect(store.catalog.path)
    try:
        return dict(db.execute("SELECT name, ino FROM dentries WHERE parent = ?", (parent,)).fetchall())
    finally:
        db.close()


def _check_names(store: Store, dirs, probes: list[bytes]) -> int:
    """Every cached name (and absence of one) in ``dirs`` equals the catalog's (the directory
    cache, store.engine.dir_cache); returns how many were cached."""
    hits = 0
    for parent in dirs:
        truth = _names(store, parent)
        for name in set(truth) | set(probes):
            cached = store.cached_entry(parent, name)
            if cached is not None:
                hits += 1
                assert cached == truth.get(name, ABSENT), \
                    f"{parent}/{name!r}: cached {cached}, catalog {truth.get(name)}"
    return hits


def test_cached_attributes_and_names_follow_every_kind_of_change(tmp_path):
    rnd = random.Random(8)
    store = Store.open(tmp_path / "s", create=True)
    try:
        top = store.make_node(store.sessions_ino, b"s1", DIR, UID, GID).id
        dirs, files = [top], []
        probes = [b"f%d" % i for i in range(0, 400, 9)] + [b"api-%d.json" % i for i in range(7)] + [b"sub"]
        cached = named = 0
        for step in range(400):
            op = rnd.choice(["create", "mkdir", "write", "truncate", "chmod", "utime", "rename",
                             "unlink", "link", "setxattr", "api", "api-delete", "rmtree"])
            try:
                if op == "create" or not files:
                    files.append(store.make_node(rnd.choice(dirs), b"f%d" % step, REG, UID, GID).id)
                elif op == "mkdir":
                    dirs.append(store.make_node(rnd.choice(dirs), b"d%d" % step, DIR, UID, GID).id)
                elif op == "write":
                    ino = rnd.choice(files)
                    store.write(ino, rnd.randrange(0, 300_000), os.urandom(rnd.randrange(1, 70_000)))
                    store.seal(ino)
                elif op == "truncate":
                    store.setattr(rnd.choice(files), size=rnd.randrange(0, 400_000))
                elif op == "chmod":
                    store.setattr(rnd.choice(files + dirs), mode=rnd.choice([0o600, 0o644, 0o755]))
                elif op == "utime":
                    store.setattr(rnd.choice(files), mtime_ns=rnd.randrange(1 << 60))
                elif op == "rename":
                    ino = rnd.choice(files)
                    parent, name = store.catalog.names_of(ino)[0]
                    store.rename(parent, name, rnd.choice(dirs), rnd.choice([b"r%d" % step, *probes]))
                elif op == "unlink":
                    ino = rnd.choice(files)
                    names = store.catalog.names_of(ino)
                    if names:
                        store.unlink(*names[0])
                    if len(names) <= 1:
                        files.remove(ino)
                elif op == "link":
                    store.link(rnd.choice(files), rnd.choice(dirs), b"l%d" % step)
                elif op == "setxattr":
                    store.setxattr(rnd.choice(files), b"user.k", b"v")
                elif op == "api":
                    store.write_files({f"sessions/s1/api-{step % 7}.json": b'{"n": %d}' % step,
                                       f"sessions/s2/sub/x{step % 3}": b"x"})
                elif op == "api-delete":
                    store.write_files({f"sessions/s1/api-{step % 7}.json": None})
                else:
                    store.write_files({}, delete_trees=["sessions/s2"])
            except FsError as exc:
                assert exc.errno in (errno.ENOENT, errno.EEXIST, errno.EISDIR, errno.ENOTEMPTY), exc
            # Ask through the caching paths, as the mount does, then compare with the catalog.
            for ino in rnd.sample(files + dirs, min(8, len(files + dirs))):
                store.getattr(ino)
                store.stored_bytes([ino])
            cached += _check_cached(store, files + dirs)
            s2 = store.catalog.lookup(store.sessions_ino, b"s2")
            parents = [store.sessions_ino, *dirs, *([s2] if s2 else [])]
            for parent in rnd.sample(parents, min(4, len(parents))):
                for name in rnd.sample(probes, 5):
                    try:
                        store.lookup(parent, name)
                    except FsError as exc:
                        assert exc.errno == errno.ENOENT
            named += _check_names(store, parents, probes)
        assert cached > 1000, "the attribute cache was hardly used: the test checked nothing"
        assert named > 2000, "the directory cache was hardly used: the test checked nothing"
    finally:
        store.close()


def test_a_reader_racing_commits_never_leaves_a_stale_row(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    try:
        ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
        stop = threading.Event()

        def read_loop():
            while not stop.is_set():
                store.committed_inode(ino)

        readers = [threading.Thread(target=read_loop) for _ in range(3)]
        for t in readers:
            t.start()
        for i in range(1, 301):
            store.setattr(ino, mtime_ns=i)
        stop.set()
        for t in readers:
            t.join()
        assert store.attrs.row(ino) in (None, _truth(store, ino)[0])
        assert store.getattr(ino).mtime_ns == 300
    finally:
        store.close()


def test_a_row_read_before_a_commit_is_not_kept_after_it(tmp_path, monkeypatch):
    """Deterministic form of the race: the read finishes, a commit changes the row, then the
    reader would fill the cache with what it read."""
    store = Store.open(tmp_path / "s", create=True)
    try:
        ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
        read_done, committed = threading.Event(), threading.Event()

        class ReadThenWait:
            """The thread's real read view; its inode read pauses after the query until the commit."""
            def __init__(self, view):
                self.tree = self
                self.view = view

            def inode(self, ino):
                row = self.view.tree.inode(ino)
                read_done.set()
                committed.wait(10)
                return row

        real_reader = store.catalog.reader
        monkeypatch.setattr(store.catalog, "reader", lambda: ReadThenWait(real_reader()))
        seen = []
        reader = threading.Thread(target=lambda: seen.append(store.committed_inode(ino)))
        reader.start()
        assert read_done.wait(10)
        with store.catalog.write() as view:
            view.tree.set_attrs(ino, time.time_ns(), mode=0o600)
        committed.set()
        reader.join()
        monkeypatch.undo()
        assert stat.S_IMODE(seen[0].mode) == 0o644          # it did read the old row ...
        assert store.attrs.row(ino) is None          # ... and did not keep it
        assert stat.S_IMODE(store.getattr(ino).mode) == 0o600
    finally:
        store.close()


def test_a_read_only_store_caches_nothing(tmp_path):
    writer = Store.open(tmp_path / "s", create=True)
    ino = writer.make_node(writer.sessions_ino, b"f", REG, UID, GID).id
    writer.close()
    reader = Store.open(tmp_path / "s", readonly=True)
    try:
        reader.getattr(ino)
        assert reader.cached_getattr(ino) is None
        assert reader.may_have_xattr(b"security.capability")
    finally:
        reader.close()


def test_xattr_names_are_known_before_their_commit_and_after_reopen(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
    assert not store.may_have_xattr(b"user.tag")
    store.setxattr(ino, b"user.tag", b"x")
    assert store.may_have_xattr(b"user.tag")
    store.close()
    store = Store.open(tmp_path / "s")
    try:
        assert store.may_have_xattr(b"user.tag")
        assert not store.may_have_xattr(b"security.capability")
    finally:
        store.close()


def test_stat_through_the_mount_follows_writes_chmod_and_truncate(mount):
    """The mount answers getattr and open from the cache: every change shows at once."""
    d = mount.path / "sessions" / "s1"
    d.mkdir()
    f = d / "a.bin"
    f.write_bytes(b"x" * 5000)
    first = os.stat(f)
    with open(f, "r+b") as fh:
        fh.seek(200_000)
        fh.write(b"y")
    second = os.stat(f)
    assert second.st_size == 200_001 and second.st_blocks >= first.st_blocks
    os.chmod(f, 0o600)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    os.truncate(f, 10)
    assert os.stat(f).st_size == 10
    with open(f, "rb") as fh:
        assert fh.read() == b"x" * 10



EXAMPLE = LEGACY_EXAMPLE


def test_a_missing_name_the_kernel_remembers_appears_once_created_behind_its_back(mount):
    """The kernel caches "no such name" (a negative entry, as ext4 does). The importer creates
    sessions and .error files without the kernel, so its commits must drop those entries: a
    stat right after the names appear in a listing finds them."""
    example = next((EXAMPLE / "sessions").glob("*.json"))
    target = mount.path / "sessions" / example.stem
    error = mount.path / "import" / "broken.json.error"
    for _ in range(3):
        assert not target.exists() and not error.exists()
    (mount.path / "import" / "attachments").mkdir(exist_ok=True)
    for att in (EXAMPLE / "attachments").iterdir():
        (mount.path / "import" / "attachments" / att.name).write_bytes(att.read_bytes())
    (mount.path / "import" / example.name).write_bytes(example.read_bytes())
    (mount.path / "import" / "broken.json").write_bytes(b'{"id": "x", ')
    deadline = time.monotonic() + 60
    # Wait on the daemon's counters: a directory listing would replace the negative entries.
    while (m := mount.stats()["migration"])["imported"] + m["failed"] < 2 or m["state"] != "idle":
        assert time.monotonic() < deadline, "the importer did not finish"
        time.sleep(0.05)
    assert target.is_dir() and (target / "metadata.json").is_file()
    assert error.is_file() and b"JSON" in error.read_bytes()
