"""Tests of store.engine.Store on a temporary directory.

Path API (whole files, atomic groups), inode API (what the mount uses), reopen,
dedup and compression, sparse files, reference counts, integrity (a flipped
bit in a pack), bad input, locking and format checks.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from store import Store
from store.core.codec import CODEC_RAW, CODEC_ZSTD, HEADER
from store.core.errors import BadInputError, FormatError, FsError, IntegrityError, LockedError
from store.backends.catalog.tree import RENAME_NOREPLACE
from store.backends.catalog.sqlite.schema import FORMAT_VERSION
from store.backends.catalog.sqlite.view import sql
from checks import assert_catalog_consistent, pack_file, pack_files


REPO = Path(__file__).resolve().parents[1]
UID, GID = os.getuid(), os.getgid()
REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755

WORDS = ("the session editor terminal focus python function review commit branch window "
         "screenshot analysis user opened file error test passed failed debugging refactor "
         "meeting notes design document browser search query result build deploy log "
         "warning message stack trace variable class module import return value").split()


# ---------------------------------------------------------------- helpers
def sentence(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n)).capitalize() + "."


def record(rnd: random.Random, i: int) -> dict:
    return {
        "id": f"shot-{i:05d}",
        "timestamp": f"2025-01-06T09:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "attachmentId": f"att-{rnd.getrandbits(64):016x}",
        "aiAnalysis": {"summary": sentence(rnd, 25), "detectedActivity": rnd.choice(WORDS),
                       "confidence": round(rnd.random(), 3), "keyElements": [rnd.choice(WORDS) for _ in range(5)]},
        "ocrText": " ".join(sentence(rnd, 12) for _ in range(6)),
    }


def json_like(n_bytes: int, seed: int = 0, start: int = 0) -> list[dict]:
    """Records of realistic session text totalling about ``n_bytes`` as JSON."""
    rnd = random.Random(seed)
    out, size, i = [], 0, start
    while size < n_bytes:
        rec = record(rnd, i)
        out.append(rec)
        size += len(orjson.dumps(rec, option=orjson.OPT_INDENT_2)) + 4
        i += 1
    return out


def dump(records: list[dict]) -> bytes:
    return orjson.dumps({"sessionId": "s", "screenshots": records}, option=orjson.OPT_INDENT_2)


def metadata(sid: str, **extra) -> bytes:
    return orjson.dumps({"id": sid, "name": f"Session {sid}", "status": "completed",
                         "startTime": "2025-01-06T09:00:00.000Z", "tags": ["python", "review"],
                         "version": 1, **extra})


def check_consistency(store: Store) -> None:
    """Reference counts, chunk -> block -> pack links and extents all agree."""
    assert_catalog_consistent(store, allow_unlinked=True)
    db = store.catalog.reader()
    no_block = sql(db).execute("SELECT c.id FROM chunks c LEFT JOIN blocks b ON b.id = c.block_id "
                          "WHERE b.id IS NULL").fetchall()
    assert no_block == []
    for pack_id, offset, length, size in sql(db).execute(
            "SELECT b.pack_id, b.offset, b.length, p.size FROM blocks b LEFT JOIN packs p ON p.id = b.pack_id"):
        assert size is not None, f"block in pack {pack_id} which has no row"
        assert offset + length <= size
        assert store.packs.size(pack_id) is not None and store.packs.size(pack_id) >= size
    no_file = sql(db).execute("SELECT f.ino FROM file_chunks f LEFT JOIN inodes i ON i.id = f.ino "
                         "WHERE i.id IS NULL").fetchall()
    assert no_file == []
    prev = None
    for ino, off, length, size in sql(db).execute(
            "SELECT f.ino, f.off, c.length, i.size FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
            "JOIN inodes i ON i.id = f.ino ORDER BY f.ino, f.off"):
        assert off + length <= size, f"inode {ino}: chunk at {off}+{length} past size {size}"
        if prev and prev[0] == ino:
            assert prev[1] <= off, f"inode {ino}: overlapping chunks at {off}"
        prev = (ino, off + length)
    orphans = sql(db).execute("SELECT d.parent, d.name FROM dentries d LEFT JOIN inodes i ON i.id = d.ino "
                         "WHERE i.id IS NULL").fetchall()
    assert orphans == []


def snapshot(store: Store) -> tuple:
    db = store.catalog.reader()
    return (sql(db).execute("SELECT parent, name, ino FROM dentries ORDER BY rowid").fetchall(),
            sql(db).execute("SELECT id, size, nlink FROM inodes ORDER BY id").fetchall(),
            sql(db).execute("SELECT ino, off, chunk_id FROM file_chunks ORDER BY ino, off").fetchall(),
            sql(db).execute("SELECT id, size FROM packs").fetchall())


@pytest.fixture
def store_dir(tmp_path) -> Path:
    root = tmp_path / "store"
    Store.init(root)
    return root


@pytest.fixture
def store(store_dir):
    s = Store.open(store_dir, sync_interval=0.5)
    yield s
    if s.persister is not None or s._lock.held:
        s.close()


def reopen(store: Store) -> Store:
    root = store.root
    store.close()
    return Store.open(root, sync_interval=0.5)


@pytest.fixture
def reopenable(store_dir):
    """A store plus a function that closes and reopens it; the last one is closed at the end."""
    current = {"s": Store.open(store_dir, sync_interval=0.5)}

    def again() -> Store:
        current["s"] = reopen(current["s"])
        return current["s"]

    yield current["s"], again
    current["s"].close()


# ---------------------------------------------------------------- path API
def test_path_api_round_trip(store):
    rnd = random.Random(1)
    files = {
        "sessions/s1/metadata.json": metadata("s1"),
        "sessions/s1/screenshots/chunk-001.json": dump(json_like(200_000, seed=1)),
        "sessions/s1/attachments/a1.png": rnd.randbytes(300_000),
        "sessions/s1/empty.json": b"",
    }
    group = store.write_files(files)
    for path, data in files.items():                     # visible at once, before the commit
        assert store.read_path(path) == data
        assert store.exists(path)
    store.flush()
    assert group.done.is_set() and group.error is None
    for path, data in files.items():
        assert store.read_path(path) == data
        ino = store.resolve(path)
        assert store.getattr(ino).size == len(data)
        assert store.read(ino, 0, len(data) + 100) == data
    assert store.list_dir("sessions") == ["s1"]
    assert sorted(store.list_dir("sessions/s1")) == ["attachments", "empty.json", "metadata.json", "screenshots"]
    assert store.list_dir("sessions/s1/screenshots") == ["chunk-001.json"]
    assert not store.exists("sessions/s1/nope.json")
    with pytest.raises(FsError) as e:
        store.read_path("sessions/s1/nope.json")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(FsError) as e:
        store.read_path("sessions/s1/screenshots")
    assert e.value.errno == errno.EISDIR
    with pytest.raises(FsError) as e:
        store.list_dir("sessions/none")
    assert e.value.errno == errno.ENOENT
    # the session index follows metadata.json
    row = sql(store.catalog.reader()).execute("SELECT id, name, status FROM sessions").fetchall()
    assert row == [("s1", "Session s1", "completed")]
    tags = sql(store.catalog.reader()).execute("SELECT tag FROM session_tags ORDER BY tag").fetchall()
    assert tags == [("python",), ("review",)]
    check_consistency(store)


def test_overwrite_and_delete(store):
    store.write_files({"sessions/a/f.json": b"version one " * 1000, "sessions/a/g.json": b"keep"})
    store.flush()
    store.write_files({"sessions/a/f.json": b"v2"})
    assert store.read_path("sessions/a/f.json") == b"v2"
    store.flush()
    assert store.read_path("sessions/a/f.json") == b"v2"
    assert store.getattr(store.resolve("sessions/a/f.json")).size == 2
    store.write_files({"sessions/a/f.json": None})
    assert not store.exists("sessions/a/f.json")
    store.flush()
    assert not store.exists("sessions/a/f.json")
    assert store.list_dir("sessions/a") == ["g.json"]
    # deleting a missing file is not an error; a tree deletion removes everything under it
    store.write_files({"sessions/a/missing": None})
    store.write_files({"sessions/b/x": b"1", "sessions/b/sub/y": b"2"})
    store.write_files({}, delete_trees=["sessions/b"])
    assert not store.exists("sessions/b/sub/y")
    store.flush()
    assert store.list_dir("sessions") == ["a"]
    # a write after a tree deletion in a later group wins
    store.write_files({}, delete_trees=["sessions/a"])
    store.write_files({"sessions/a/new": b"n"})
    assert store.read_path("sessions/a/new") == b"n" and not store.exists("sessions/a/g.json")
    store.flush()
    assert store.list_dir("sessions/a") == ["new"]
    check_consistency(store)


def test_failed_group_changes_nothing(store):
    store.write_files({"sessions/x": b"a file"})
    store.flush()
    bad = store.write_files({"sessions/y/a": b"1", "sessions/x/b": b"2"})     # x is not a directory
    good = store.write_files({"sessions/z": b"3"})
    store.flush()
    assert isinstance(bad.error, FsError) and bad.error.errno == errno.ENOTDIR
    assert good.error is None
    assert not store.exists("sessions/y/a") and not store.exists("sessions/y")
    assert store.read_path("sessions/z") == b"3" and store.read_path("sessions/x") == b"a file"
    check_consistency(store)


# ---------------------------------------------------------------- inode API
def test_inode_api_write_read_truncate(store):
    sess = store.sessions_ino
    ino = store.make_node(sess, b"f.txt", REG, UID, GID).id
    assert store.lookup(sess, b"f.txt").id == ino
    assert store.write(ino, 0, b"hello world") == 11
    assert store.read(ino, 0, 100) == b"hello world"
    assert store.getattr(ino).size == 11
    assert store.has_pending(ino)
    assert store.seal(ino) and not store.seal(ino)
    store.fsync(ino)
    assert not store.has_pending(ino)
    assert store.read(ino, 6, 5) == b"world"
    assert store.read_path("sessions/f.txt") == b"hello world"       # both faces agree
    store.write(ino, 6, b"WORLD!")
    assert store.read(ino, 0, 100) == b"hello WORLD!"
    store.truncate(ino, 5)
    assert store.read(ino, 0, 100) == b"hello"
    store.truncate(ino, 8)
    assert store.read(ino, 0, 100) == b"hello\0\0\0"
    store.fsync(ino)
    assert store.read(ino, 0, 100) == b"hello\0\0\0" and store.getattr(ino).size == 8
    assert store.read(ino, 100, 10) == b"" and store.read(ino, 8, 10) == b""
    with pytest.raises(FsError) as e:
        store.write(ino, -1, b"x")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(FsError) as e:
        store.truncate(ino, 1 << 50)
    assert e.value.errno == errno.EFBIG
    d = store.make_node(sess, b"d", DIR, UID, GID).id
    with pytest.raises(FsError) as e:
        store.write(d, 0, b"x")
    assert e.value.errno == errno.EISDIR
    with pytest.raises(FsError) as e:
        store.make_node(sess, b"f.txt", REG, UID, GID)
    assert e.value.errno == errno.EEXIST
    check_consistency(store)


def test_inode_api_namespace(store):
    sess = store.sessions_ino
    d1 = store.make_node(sess, b"d1", DIR, UID, GID).id
    d2 = store.make_node(sess, b"d2", DIR, UID, GID).id
    a = store.make_node(d1, b"a", REG, UID, GID).id
    b = store.make_node(d2, b"b", REG, UID, GID).id
    big = random.Random(3).randbytes(400_000)
    store.write(a, 0, b"content of a")
    store.write(b, 0, big)
    store.seal(a)
    store.seal(b)
    store.fsync()
    assert store.getattr(sess).nlink == 4
    # rename across directories
    store.rename(d1, b"a", d2, b"a2")
    assert store.read_path("sessions/d2/a2") == b"content of a"
    assert not store.exists("sessions/d1/a")
    # rename over an existing file: the target's inode and content go away
    store.rename(d2, b"a2", d2, b"b")
    assert store.lookup(d2, b"b").id == a
    assert store.read_path("sessions/d2/b") == b"content of a"
    assert store.catalog.inode(b) is None
    db = store.catalog.reader()
    assert sql(db).execute("SELECT count(*) FROM file_chunks WHERE ino = ?", (b,)).fetchone()[0] == 0
    check_consistency(store)
    c = store.make_node(d2, b"c", REG, UID, GID).id
    with pytest.raises(FsError) as e:
        store.rename(d2, b"c", d2, b"b", RENAME_NOREPLACE)
    assert e.value.errno == errno.EEXIST
    # directories
    store.rename(sess, b"d2", sess, b"d3")
    assert sorted(store.list_dir("sessions")) == ["d1", "d3"]
    with pytest.raises(FsError) as e:
        store.rmdir(sess, b"d3")
    assert e.value.errno == errno.ENOTEMPTY
    store.rmdir(sess, b"d1")
    assert store.catalog.inode(d1) is None
    # hard links share content
    store.link(c, sess, b"c-link")
    store.write(c, 0, b"linked")
    store.fsync(c)
    assert store.getattr(c).nlink == 2
    assert store.read_path("sessions/c-link") == b"linked"
    store.unlink(d2, b"c")
    assert store.getattr(c).nlink == 1
    assert store.read_path("sessions/c-link") == b"linked"
    with pytest.raises(FsError) as e:
        store.unlink(sess, b"d3")
    assert e.value.errno == errno.EISDIR
    with pytest.raises(FsError) as e:
        store.unlink(sess, b"nope")
    assert e.value.errno == errno.ENOENT
    # symlinks
    ln = store.make_node(sess, b"ln", stat.S_IFLNK | 0o777, UID, GID, target=b"d3/b").id
    assert store.readlink(ln) == b"d3/b"
    # readdir
    names = [n for _, n, _ in store.readdir(sess, 0)]
    assert sorted(names) == [b"c-link", b"d3", b"ln"]
    store.unlink(d2, b"b")
    store.rmdir(sess, b"d3")
    check_consistency(store)


def test_unlinked_open_file_lives_until_unpinned(store):
    sess = store.sessions_ino
    ino = store.make_node(sess, b"f", REG, UID, GID).id
    data = random.Random(5).randbytes(200_000)
    store.write(ino, 0, data)
    store.fsync(ino)
    store.pin(ino)
    store.unlink(sess, b"f")
    assert store.read(ino, 0, len(data)) == data
    store.write(ino, 0, b"still writable")
    store.seal(ino)
    store.fsync()
    assert store.read(ino, 0, 14) == b"still writable"
    store.unpin(ino)
    assert store.catalog.inode(ino) is None
    check_consistency(store)
    db = store.catalog.reader()
    assert sql(db).execute("SELECT count(*) FROM chunks WHERE refcount > 0").fetchone()[0] == 0


def test_a_new_link_replies_with_the_size_of_writes_not_yet_committed(store):
    """link(2)'s reply is cached by the kernel: with the file's closed writes still queued it
    must say their size, not the committed row's 0 (an append through the new name would
    otherwise start at 0 and overwrite)."""
    sess = store.sessions_ino
    ino = store.make_node(sess, b"a", REG, UID, GID).id
    release, holding = threading.Event(), threading.Event()
    worker = threading.Thread(target=store.run_in_worker, args=(lambda: (holding.set(), release.wait(30)),))
    worker.start()
    try:
        assert holding.wait(30)
        store.write(ino, 0, b"shared")
        store.seal(ino)
        assert store.link(ino, sess, b"b").size == 6
    finally:
        release.set()
        worker.join()
    store.fsync()
    assert store.getattr(ino).size == 6


def test_xattrs(store):
    ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
    store.setxattr(ino, b"user.a", b"1")
    store.setxattr(ino, b"user.b", b"\0binary")
    assert store.getxattr(ino, b"user.a") == b"1"
    assert store.listxattr(ino) == [b"user.a", b"user.b"]
    with pytest.raises(FsError) as e:
        store.setxattr(ino, b"user.a", b"2", create=True)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(FsError) as e:
        store.setxattr(ino, b"user.c", b"2", replace=True)
    assert e.value.errno == errno.ENODATA
    store.setxattr(ino, b"user.a", b"2", replace=True)
    assert store.getxattr(ino, b"user.a") == b"2"
    store.removexattr(ino, b"user.b")
    with pytest.raises(FsError) as e:
        store.getxattr(ino, b"user.b")
    assert e.value.errno == errno.ENODATA
    with pytest.raises(FsError):
        store.removexattr(ino, b"user.b")
    store2 = reopen(store)
    try:
        assert store2.listxattr(ino) == [b"user.a"] and store2.getxattr(ino, b"user.a") == b"2"
    finally:
        store2.close()


def test_setattr_mode_and_times(store):
    ino = store.make_node(store.sessions_ino, b"f", REG, UID, GID).id
    row = store.setattr(ino, mode=0o600, mtime_ns=1_000_000_000)
    assert stat.S_IMODE(row.mode) == 0o600 and stat.S_ISREG(row.mode) and row.mtime_ns == 1_000_000_000
    store.write(ino, 0, b"abc")
    row = store.setattr(ino, size=1)
    assert row.size == 1 and store.read(ino, 0, 10) == b"a"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_writes_match_a_model_across_commits_and_reopen(reopenable, seed):
    """Random writes, truncates, seals and fsyncs on a few files, checked against bytearrays."""
    store, again = reopenable
    rnd = random.Random(seed)
    text = dump(json_like(400_000, seed=seed))
    noise = rnd.randbytes(400_000)
    sess = store.sessions_ino
    files = {}
    for i in range(3):
        ino = store.make_node(sess, f"f{i}".encode(), REG, UID, GID).id
        files[ino] = bytearray()
    for step in range(70):
        ino = rnd.choice(list(files))
        model = files[ino]
        op = rnd.random()
        if op < 0.55:
            size = rnd.choice([1, 100, 5000, 70_000, 300_000])
            off = rnd.choice([0, len(model), rnd.randint(0, len(model) + 1000), len(model) + 50_000])
            src = rnd.choice([text, noise, bytes(400_000)])
            start = rnd.randint(0, len(src) - size)
            data = src[start:start + size]
            store.write(ino, off, data)
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + size] = data
        elif op < 0.7:
            size = rnd.choice([0, len(model) // 2, len(model) + 1000, max(0, len(model) - 1)])
            store.truncate(ino, size)
            del model[size:]
            model.extend(bytes(size - len(model)))
        elif op < 0.9:
            store.seal(ino)
        elif op < 0.95:
            store.fsync(ino)
        else:
            store.fsync()
        assert store.getattr(ino).size == len(model)
        lo = rnd.randint(0, len(model))
        assert store.read(ino, lo, 70_000) == bytes(model[lo:lo + 70_000]), f"step {step}"
    for ino, model in files.items():
        assert store.read(ino, 0, len(model) + 10) == bytes(model)
        store.seal(ino)
    store.fsync()
    for ino, model in files.items():
        assert store.read(ino, 0, len(model) + 10) == bytes(model)
    check_consistency(store)
    store = again()
    for ino, model in files.items():
        assert store.getattr(ino).size == len(model)
        assert store.read(ino, 0, len(model) + 10) == bytes(model)
    check_consistency(store)


# ---------------------------------------------------------------- reopen
def test_reopen_keeps_everything_byte_for_byte(reopenable):
    store, again = reopenable
    rnd = random.Random(7)
    files = {f"sessions/s{i}/metadata.json": metadata(f"s{i}") for i in range(3)}
    files["sessions/s0/screenshots/chunk-001.json"] = dump(json_like(500_000, seed=3))
    files["sessions/s0/attachments/big.bin"] = rnd.randbytes(2_500_000)
    files["sessions/s1/empty"] = b""
    files["sessions/s1/zeros"] = bytes(300_000)
    store.write_files(files)
    ino = store.make_node(store.sessions_ino, b"inode-file", REG, UID, GID).id
    store.write(ino, 0, b"start")
    store.write(ino, 1_000_000, b"end")
    store.seal(ino)
    store.flush()
    files["sessions/inode-file"] = b"start" + bytes(1_000_000 - 5) + b"end"
    mtimes = {p: store.getattr(store.resolve(p)).mtime_ns for p in files}
    names = store.list_dir("sessions")
    stats = store.statistics()
    store = again()
    for path, data in files.items():
        assert store.read_path(path) == data, path
        row = store.getattr(store.resolve(path))
        assert row.size == len(data) and row.mtime_ns == mtimes[path]
    assert store.list_dir("sessions") == names
    after = store.statistics()
    assert (after.files, after.stored_bytes, after.logical_bytes, after.sessions) == \
        (stats.files, stats.stored_bytes, stats.logical_bytes, stats.sessions) and after.sessions == 3
    check_consistency(store)
    # and it keeps working after the reopen
    store.write_files({"sessions/s9/x": b"after"})
    store.flush()
    store = again()
    assert store.read_path("sessions/s9/x") == b"after"
    assert store.read_path("sessions/s0/attachments/big.bin") == files["sessions/s0/attachments/big.bin"]


def test_close_commits_queued_writes(store_dir):
    store = Store.open(store_dir)
    data = random.Random(2).randbytes(500_000)
    store.write_files({"sessions/q/a": data})
    ino = store.make_node(store.sessions_ino, b"b", REG, UID, GID).id
    store.write(ino, 0, b"sealed before close")
    store.seal(ino)
    store.close()
    store = Store.open(store_dir)
    try:
        assert store.read_path("sessions/q/a") == data
        assert store.read_path("sessions/b") == b"sealed before close"
    finally:
        store.close()


# ---------------------------------------------------------------- dedup, compression, sparse
def test_identical_content_is_stored_once(store):
    data = random.Random(9).randbytes(1 << 20)
    store.write_files({"sessions/a/one.bin": data})
    store.flush()
    before = store.statistics()
    store.write_files({"sessions/b/two.bin": data})
    store.flush()
    after = store.statistics()
    assert after.stored_bytes - before.stored_bytes < len(data) * 0.01
    assert after.referenced_bytes == 2 * len(data) and after.unique_bytes == len(data)
    assert after.dedup_ratio == pytest.approx(2.0)
    # the same through the inode API
    ino = store.make_node(store.sessions_ino, b"three.bin", REG, UID, GID).id
    for off in range(0, len(data), 128 * 1024):
        store.write(ino, off, data[off:off + 128 * 1024])
    store.fsync(ino)
    assert store.statistics().stored_bytes - before.stored_bytes < len(data) * 0.01
    assert store.read_path("sessions/b/two.bin") == data and store.read(ino, 0, len(data)) == data


def test_appending_to_json_stores_little(store):
    records = json_like(1_000_000, seed=4)
    v1 = dump(records)
    more = json_like(50_000, seed=5, start=len(records))
    v2 = dump(records + more)
    assert 950_000 < len(v1) < 1_100_000 and 45_000 < len(v2) - len(v1) < 60_000
    store.write_files({"sessions/s/screenshots/chunk-001.json": v1})
    store.flush()
    s1 = store.statistics()
    assert s1.compression_ratio > 2                       # text compresses
    store.write_files({"sessions/s/screenshots/chunk-001.json": v2})
    store.flush()
    s2 = store.statistics()
    growth = s2.stored_bytes - s1.stored_bytes
    assert growth < 0.05 * len(v1), f"rewriting with {len(v2) - len(v1)} bytes appended stored {growth} bytes"
    assert store.read_path("sessions/s/screenshots/chunk-001.json") == v2
    # appending through the inode API (what `>>` on the mount does) is as cheap
    ino = store.resolve("sessions/s/screenshots/chunk-001.json")
    extra = b"\n" + dump(json_like(50_000, seed=6))
    store.write(ino, len(v2), extra)
    store.fsync(ino)
    growth = store.statistics().stored_bytes - s2.stored_bytes
    assert growth < 0.05 * len(v1), growth
    assert store.read(ino, 0, 1 << 22) == v2 + extra
    check_consistency(store)


def test_sparse_file_stores_almost_nothing(store):
    ino = store.make_node(store.sessions_ino, b"sparse", REG, UID, GID).id
    before = store.statistics().stored_bytes
    tb = 1 << 40
    store.truncate(ino, tb)
    store.write(ino, tb - 1, b"\x01")
    store.fsync(ino)
    row = store.getattr(ino)
    assert row.size == tb
    assert store.statistics().stored_bytes - before < 4096
    assert store.statistics().logical_bytes >= tb
    assert store.read(ino, 0, 1 << 20) == bytes(1 << 20)
    assert store.read(ino, tb // 2, 4096) == bytes(4096)
    assert store.read(ino, tb - 4, 100) == b"\0\0\0\x01"
    # writing zeros stores holes too
    store.write(ino, 5 << 30, bytes(4 << 20))
    store.fsync(ino)
    assert store.statistics().stored_bytes - before < 4096
    assert store.read(ino, (5 << 30) - 10, 20) == bytes(20)
    check_consistency(store)


# ---------------------------------------------------------------- reference counts
def test_reference_counts_follow_writes_and_deletes(store):
    rnd = random.Random(12)
    shared = rnd.randbytes(600_000)
    store.write_files({f"sessions/r/{i}": shared + rnd.randbytes(100_000) for i in range(5)})
    store.write_files({"sessions/r/dup": shared, "sessions/r/text": dump(json_like(300_000, seed=8))})
    store.flush()
    check_consistency(store)
    db = store.catalog.reader()
    assert sql(db).execute("SELECT max(refcount) FROM chunks").fetchone()[0] >= 6
    store.write_files({"sessions/r/0": None, "sessions/r/1": b"short now"})
    store.write_files({}, delete_trees=["sessions/r/2"])
    ino = store.resolve("sessions/r/3")
    store.truncate(ino, 1000)
    store.fsync(ino)
    store.unlink(store.resolve("sessions/r"), b"4")
    store.rename(store.resolve("sessions/r"), b"dup", store.resolve("sessions/r"), b"text")
    store.flush()
    check_consistency(store)
    store.write_files({}, delete_trees=["sessions/r"])
    store.flush()
    check_consistency(store)
    assert sql(db).execute("SELECT count(*) FROM file_chunks").fetchone()[0] == 0
    assert sql(db).execute("SELECT count(*) FROM chunks WHERE refcount != 0").fetchone()[0] == 0
    assert store.statistics().unique_bytes == 0


# ---------------------------------------------------------------- integrity
@pytest.mark.parametrize("kind", ["zstd", "raw"])
def test_flipped_bit_in_a_pack_is_an_integrity_error_naming_chunk_and_file(store_dir, kind):
    rnd = random.Random(21)
    files = {f"sessions/i/text{i}.json": dump(json_like(150_000, seed=30 + i)) for i in range(3)}
    files.update({f"sessions/i/blob{i}.bin": rnd.randbytes(150_000) for i in range(3)})
    store = Store.open(store_dir)
    store.write_files(files)
    store.flush()
    db = store.catalog.reader()
    want = CODEC_ZSTD if kind == "zstd" else CODEC_RAW
    block_id, pack_id, offset, length = sql(db).execute(
        "SELECT id, pack_id, offset, length FROM blocks WHERE codec = ? ORDER BY id LIMIT 1", (want,)).fetchone()
    chunks = sql(db).execute("SELECT id, hash, block_off, length FROM chunks WHERE block_id = ? ORDER BY block_off",
                        (block_id,)).fetchall()
    payload_len = length - HEADER.size
    where = payload_len // 2 if kind == "zstd" else 3          # raw: inside the first chunk
    if kind == "zstd":
        bad_chunks = [c for c in chunks]
    else:
        bad_chunks = [c for c in chunks if c[2] <= where < c[2] + c[3]]
    bad_ids = {c[0] for c in bad_chunks}
    bad_hashes = {bytes(c[1]).hex() for c in bad_chunks}
    affected = set()
    for (ino,) in sql(db).execute(f"SELECT DISTINCT ino FROM file_chunks WHERE chunk_id IN "
                             f"({','.join('?' * len(bad_ids))})", tuple(bad_ids)):
        affected.add(store.catalog.path_of(ino))
    assert len(affected) == 1 and affected <= set(files)
    bad_path = affected.pop()
    store.close()

    pack = pack_file(store_dir, pack_id)
    with open(pack, "r+b") as f:
        f.seek(offset + HEADER.size + where)
        byte = f.read(1)[0]
        f.seek(offset + HEADER.size + where)
        f.write(bytes([byte ^ 0x10]))

    store = Store.open(store_dir)
    try:
        with pytest.raises(IntegrityError) as e:
            store.read_path(bad_path)
        msg = str(e.value)
        assert bad_path in msg and e.value.path == bad_path
        assert e.value.chunk in bad_hashes and e.value.chunk in msg
        # the inode face says the same, and says it again (the bad block is not served from cache)
        ino = store.resolve(bad_path)
        for _ in range(2):
            with pytest.raises(IntegrityError) as e:
                store.read(ino, 0, len(files[bad_path]))
            assert bad_path in str(e.value) and e.value.chunk in bad_hashes
        if kind == "raw":
            # only the damaged chunk is refused: bytes past it still read
            first_len = bad_chunks[0][3]
            assert store.read(ino, first_len, 1000) == files[bad_path][first_len:first_len + 1000]
        for path, data in files.items():
            if path != bad_path:
                assert store.read_path(path) == data, path
        # the rest of the store keeps working
        store.write_files({"sessions/i/new": b"fine"})
        store.flush()
        assert store.read_path("sessions/i/new") == b"fine"
    finally:
        store.close()


def test_missing_pack_is_an_integrity_error(store_dir):
    store = Store.open(store_dir)
    store.write_files({"sessions/m/a": random.Random(1).randbytes(100_000)})
    store.flush()
    store.close()
    for p in pack_files(store_dir):
        p.rename(p.with_name("moved"))
    # (the open truncates/removes nothing it does not know; a missing pack is reported on read)
    store = Store.open(store_dir)
    try:
        with pytest.raises(IntegrityError) as e:
            store.read_path("sessions/m/a")
        assert "sessions/m/a" in str(e.value)
    finally:
        store.close()


# ---------------------------------------------------------------- bad input
BAD_PATHS = ["sessions/../etc/passwd", "../x", "sessions/./a", "sessions/a\0b", "sessions/" + "x" * 256,
             "sessions/" + "é" * 128]


@pytest.mark.parametrize("bad", BAD_PATHS, ids=["dotdot", "leading-dotdot", "dot", "nul", "long", "long-utf8"])
def test_bad_paths_are_refused_and_change_nothing(store, bad):
    store.write_files({"sessions/ok/a": b"existing"})
    store.flush()
    before = snapshot(store)
    with pytest.raises(BadInputError):
        store.write_files({bad: b"x"})
    with pytest.raises(BadInputError):
        store.write_files({"sessions/ok/b": b"good", bad: b"x"})     # the whole group is refused
    with pytest.raises(BadInputError):
        store.write_files({}, delete_trees=[bad])
    with pytest.raises(BadInputError):
        store.read_path(bad)
    with pytest.raises(BadInputError):
        store.exists(bad)
    store.flush()
    assert snapshot(store) == before
    assert not store.exists("sessions/ok/b")
    assert store.read_path("sessions/ok/a") == b"existing"


def test_other_bad_input(store):
    before = snapshot(store)
    with pytest.raises(BadInputError):
        store.write_files({"sessions/a": "not bytes"})
    with pytest.raises(BadInputError):
        store.write_files({"": b"root"})
    with pytest.raises(BadInputError):
        store.write_files({}, delete_trees=["/"])
    with pytest.raises(BadInputError):
        store.read_path(None)
    sess = store.sessions_ino
    for name, code in [(b"..", errno.EINVAL), (b".", errno.EINVAL), (b"a/b", errno.EINVAL),
                       (b"a\0b", errno.EINVAL), (b"", errno.EINVAL), (b"x" * 256, errno.ENAMETOOLONG)]:
        with pytest.raises(FsError) as e:
            store.make_node(sess, name, REG, UID, GID)
        assert e.value.errno == code, name
    store.flush()
    assert snapshot(store) == before


# ---------------------------------------------------------------- lock and format
def test_second_writer_is_locked_out(store_dir):
    store = Store.open(store_dir, owner={"mountpoint": "/mnt/sessions"})
    try:
        with pytest.raises(LockedError) as e:
            Store.open(store_dir)
        msg = str(e.value)
        assert str(store_dir) in msg and str(os.getpid()) in msg and "/mnt/sessions" in msg and "in use" in msg
        # from another process too
        code = ("import sys; from store import Store, LockedError\n"
                "try:\n    Store.open(sys.argv[1])\nexcept LockedError as e:\n    print(e); sys.exit(3)\n")
        proc = subprocess.run([sys.executable, "-c", code, str(store_dir)], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert str(os.getpid()) in proc.stdout
        # the holder is unaffected
        store.write_files({"sessions/x": b"1"})
        store.flush()
        assert store.read_path("sessions/x") == b"1"
        # a read-only open is allowed beside the writer and sees committed data
        ro = Store.open(store_dir, readonly=True)
        try:
            assert ro.read_path("sessions/x") == b"1"
            with pytest.raises(FsError) as e:
                ro.write(ro.resolve("sessions/x"), 0, b"no")
            assert e.value.errno == errno.EROFS
        finally:
            ro.close()
    finally:
        store.close()
    Store.open(store_dir).close()          # released on close


def test_opening_a_non_store_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="not a sessionfs store"):
        Store.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="not a sessionfs store"):
        Store.open(tmp_path / "empty")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "catalog.db").write_bytes(os.urandom(8192))
    with pytest.raises(FormatError, match="catalog"):
        Store.open(junk)
    other = tmp_path / "other-sqlite"
    other.mkdir()
    db = sqlite3.connect(other / "catalog.db")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(FormatError, match="not a sessionfs catalog"):
        Store.open(other)
    # init refuses a non-empty directory, and one that already holds a catalog
    (tmp_path / "empty" / "file").write_bytes(b"x")
    with pytest.raises(FormatError, match="not empty"):
        Store.init(tmp_path / "empty")
    with pytest.raises(FormatError, match="already"):
        Store.init(junk)


def test_wrong_format_version_names_both_versions(store_dir):
    Store.open(store_dir).close()
    db = sqlite3.connect(store_dir / "catalog.db")
    sql(db).execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION + 41,))
    db.commit()
    db.close()
    with pytest.raises(FormatError) as e:
        Store.open(store_dir)
    msg = str(e.value)
    assert f"format {FORMAT_VERSION + 41}" in msg and f"format {FORMAT_VERSION}" in msg
    # the failed open released the lock: a fixed catalog opens again
    db = sqlite3.connect(store_dir / "catalog.db")
    sql(db).execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION,))
    db.commit()
    db.close()
    Store.open(store_dir).close()


def test_init_twice(store_dir):
    with pytest.raises(FormatError, match="already"):
        Store.init(store_dir)
    assert Store.init(store_dir, exist_ok=True) == store_dir
    assert stat.S_IMODE(os.stat(store_dir).st_mode) == 0o700


# ---------------------------------------------------------------- concurrency
def test_reads_racing_commits_never_fail_nor_mix(store):
    """Readers on other threads while the worker commits and discards overlays under them.

    A read holds the file's layers while the worker may commit the lowest one and close
    its staging file; the read must neither fail (EBADF) nor read a reused descriptor.
    """
    import threading
    import time

    n, blocks = 4096, 20
    ino = store.make_node(store.sessions_ino, b"raced", REG, UID, GID).id
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                data = store.read(ino, 0, n * blocks)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(repr(exc))
                continue
            reads[0] += 1
            for i in range(len(data) // n):          # every written 4 KiB block holds one nonzero value
                blk = data[i * n:(i + 1) * n]
                if blk.count(blk[0]) != n or blk[0] == 0:
                    problems.append(f"block {i} mixed: {sorted(set(blk))[:5]}")
                    break

    def churn(tmp: Path):
        # open and close files so that a closed staging fd gets reused quickly
        while not stop.is_set():
            fd = os.open(tmp, os.O_RDONLY)
            os.close(fd)

    victim = store.root.parent / "churn"
    victim.write_bytes(b"\xee" * n * blocks)
    threads = [threading.Thread(target=reader) for _ in range(2)] + \
              [threading.Thread(target=churn, args=(victim,))]
    for t in threads:
        t.start()
    try:
        v, deadline = 1, time.monotonic() + 1.5
        while time.monotonic() < deadline and len(problems) < 5:
            for k in range(blocks):
                store.write(ino, k * n, bytes([v % 250 + 1]) * n)
                v += 1
            store.seal(ino)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == [], problems[:5]
    assert reads[0] > 10
    store.fsync()
    check_consistency(store)


# ---------------------------------------------------------------- damage and failures do not stall the store
def _damage_block_of(store_dir: Path, path: str) -> tuple[int, list[tuple[int, int]]]:
    """Flip a bit in the middle of the (zstd) block holding ``path``'s first chunk.

    Returns the block's file offset ranges [(off, off+len)] of the chunks in it."""
    with Store.open(store_dir) as store:
        ino = store.resolve(path)
        db = store.catalog.reader()
        block_id, pack_id, offset, length, codec_id = sql(db).execute(
            "SELECT b.id, b.pack_id, b.offset, b.length, b.codec FROM file_chunks f "
            "JOIN chunks c ON c.id = f.chunk_id JOIN blocks b ON b.id = c.block_id "
            "WHERE f.ino = ? ORDER BY f.off LIMIT 1", (ino,)).fetchone()
        assert codec_id == CODEC_ZSTD
        spans = sql(db).execute("SELECT f.off, f.off + c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                           "WHERE f.ino = ? AND c.block_id = ? ORDER BY f.off", (ino, block_id)).fetchall()
    pack = pack_file(store_dir, pack_id)
    with open(pack, "r+b") as f:
        pos = offset + HEADER.size + (length - HEADER.size) // 2
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ 0x01]))
    return ino, spans


def test_appending_next_to_damaged_data_still_commits(store_dir):
    text = dump(json_like(100_000, seed=41))
    with Store.open(store_dir) as store:
        store.write_files({"sessions/d/a.json": text, "sessions/d/ok.json": b"fine"})
    ino, spans = _damage_block_of(store_dir, "sessions/d/a.json")
    assert spans[-1][1] == len(text)                 # the damaged block holds the file's tail
    store = Store.open(store_dir)
    try:
        store.write(ino, len(text), b"\n{\"appended\": true}")
        store.fsync(ino)                             # commits: the damaged tail chunk is kept as is
        assert not store.has_pending(ino)
        assert store.read(ino, len(text), 100) == b"\n{\"appended\": true}"
        with pytest.raises(IntegrityError):
            store.read(ino, 0, 10)
        store.write_files({"sessions/d/later.json": b"later"})
        store.flush()
        assert store.read_path("sessions/d/later.json") == b"later"
        check_consistency(store)
    finally:
        store.close()


def test_a_write_into_damaged_data_is_dropped_and_reported_without_stalling(store_dir):
    text = dump(json_like(100_000, seed=42))
    with Store.open(store_dir) as store:
        store.write_files({"sessions/d/a.json": text})
    ino, spans = _damage_block_of(store_dir, "sessions/d/a.json")
    start, end = spans[0]
    store = Store.open(store_dir)
    try:
        store.write(ino, start + (end - start) // 2, b"XXXX")     # needs the damaged bytes around it
        store.seal(ino)
        store.write_files({"sessions/d/b.json": b"queued behind it"})
        with pytest.raises(IntegrityError) as e:
            store.fsync(ino)
        assert "sessions/d/a.json" in str(e.value)
        store.flush()                                 # the queue goes on
        assert store.read_path("sessions/d/b.json") == b"queued behind it"
        assert not store.has_pending(ino)
        with pytest.raises(IntegrityError):
            store.read(ino, start, 10)
        check_consistency(store)
    finally:
        store.close()
    with Store.open(store_dir) as store:
        assert store.read_path("sessions/d/b.json") == b"queued behind it"


def test_damaged_metadata_does_not_block_its_session(store_dir):
    meta = metadata("s1", description=" ".join(WORDS) * 20)
    with Store.open(store_dir) as store:
        store.write_files({"sessions/s1/metadata.json": meta, "sessions/s1/x.json": b"x"})
        store.flush()
        assert store.statistics().sessions == 1
    _damage_block_of(store_dir, "sessions/s1/metadata.json")
    store = Store.open(store_dir)
    try:
        store.write_files({"sessions/s1/y.json": b"y"})
        store.flush()
        assert store.read_path("sessions/s1/y.json") == b"y"
        store.unlink(store.resolve("sessions/s1"), b"x.json")
        assert store.list_dir("sessions/s1") == ["metadata.json", "y.json"]
        # rewriting metadata.json (different bytes) heals the index
        store.write_files({"sessions/s1/metadata.json": metadata("s1", name="Healed")})
        store.flush()
        rows = sql(store.catalog.reader()).execute("SELECT id, name FROM sessions").fetchall()
        assert rows == [("s1", "Healed")]
        check_consistency(store)
    finally:
        store.close()


class FullDiskPacks:
    """The local packer, whose fsync before a commit fails with ENOSPC while ``full`` is set."""

    def __new__(cls, root):
        from store.backends.objects.packs import Packer, local_packer

        class _Packs(Packer):
            full = False

            def sync(self):
                if self.full:
                    raise OSError(errno.ENOSPC, "No space left on device (injected)")
                super().sync()

        packs = local_packer(root)
        packs.__class__ = _Packs
        return packs


def test_full_disk_gives_clear_errors_and_loses_nothing(store_dir):
    packs = FullDiskPacks(store_dir)
    store = Store.open(store_dir, packs=packs)
    blob = random.Random(1).randbytes(300_000)
    data = random.Random(2).randbytes(200_000)
    try:
        store.write_files({"sessions/f/before": b"committed before"})
        store.flush()
        pack_sizes = snapshot(store)[3]
        packs.full = True
        ino = store.make_node(store.sessions_ino, b"inode-file", REG, UID, GID).id
        store.write(ino, 0, blob)
        store.seal(ino)
        store.write_files({"sessions/f/during": data})       # queued behind the overlay
        with pytest.raises(FsError) as e:
            store.persister.barrier(durable=True).wait(timeout=10)   # fails promptly, no hang
        assert e.value.errno == errno.ENOSPC and "No space left" in str(e.value)
        with pytest.raises(FsError) as e:
            store.fsync(ino)
        assert e.value.errno == errno.ENOSPC
        # reads still see the queued data; nothing half-written reached the catalog
        assert store.read_path("sessions/f/during") == data and store.read(ino, 0, len(blob)) == blob
        assert snapshot(store)[3] == pack_sizes
        assert store.persister.statistics().failures >= 1
        packs.full = False
        store.flush()                         # the retry commits everything, in order
        assert store.read_path("sessions/f/during") == data
        assert store.read(ino, 0, len(blob)) == blob
        check_consistency(store)
    finally:
        packs.full = False
        store.close()
    with Store.open(store_dir) as store:
        assert store.read_path("sessions/f/during") == data
        assert store.read_path("sessions/inode-file") == blob
        check_consistency(store)


def test_read_connections_close_when_their_threads_exit(store):
    """The mount's worker threads come and go; each one's catalog connection must go with it
    (SQLite keeps a closed connection's descriptors for reuse while the store is open, so the
    count of descriptors levels off at what the busiest moment needed instead of growing)."""
    import gc
    import threading

    together = threading.Barrier(8)

    def read_then_wait():
        store.catalog.names_of(store.sessions_ino)
        together.wait(timeout=60)       # all 8 connections open at once in every burst

    def burst():
        threads = [threading.Thread(target=read_then_wait) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gc.collect()

    store.catalog.reader()
    before = store.catalog.open_readers()
    burst()
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        burst()
        assert store.catalog.open_readers() == before
    assert len(os.listdir("/proc/self/fd")) <= fds + 4     # kept connections would add 80 and more
    assert store.getattr(store.sessions_ino).nlink >= 2       # this thread's connection still works


# ---------------------------------------------------------------- the read path's caching
def test_a_read_of_a_raw_block_costs_its_chunk_and_a_sequential_reader_gets_the_next_blocks(store):
    """Incompressible bytes are stored raw: a lone read verifies only the chunks it needs and
    caches no block; a read continuing the previous one starts decoding the next blocks."""
    data = random.Random(8).randbytes(6 * 1024 * 1024)
    store.write_files({"sessions/r/video.mp4": data})
    store.flush()
    ino = store.resolve("sessions/r/video.mp4")
    locs = store.catalog.locations(ino, 0, len(data), 1 << 20)
    assert {store.catalog.block(loc.block_id).codec for loc in locs} == {CODEC_RAW}
    middle = len(data) // 2
    assert store.read(ino, middle, 4096) == data[middle:middle + 4096]
    assert store.cache.statistics().entries == 0
    first = [loc.block_id for loc in locs if loc.off < 128 * 1024]
    ahead = sorted({loc.block_id for loc in locs if loc.off >= 2 * 1024 * 1024} - set(first))
    assert store.read(ino, 0, 128 * 1024) == data[:128 * 1024]            # starts the file
    assert store.read(ino, 128 * 1024, 128 * 1024) == data[128 * 1024:256 * 1024]
    for block_id in ahead:
        store.readahead.claim(block_id)
    assert all(block_id in store.cache for block_id in ahead)
    off = 256 * 1024
    while off < len(data):
        got = store.read(ino, off, 128 * 1024)
        assert got == data[off:off + 128 * 1024]
        off += len(got)


def test_commit_listeners_hear_of_changes_behind_the_mount_only(store):
    """A committed write of the inode face is what the kernel already shows: a mount must not
    invalidate its pages (a writer holds their locks while it waits for the daemon); a write of
    the path face changes the file behind the kernel's back."""
    heard: list[int] = []
    store.add_commit_listener(heard.extend)
    ino = store.make_node(store.sessions_ino, b"f.txt", REG, UID, GID).id
    store.write(ino, 0, b"through the mount")
    store.fsync(ino)
    assert store.read_path("sessions/f.txt") == b"through the mount" and heard == []
    store.write_files({"sessions/f.txt": b"through the API"})
    store.flush()
    assert heard == [ino]


def test_a_batch_that_reused_a_chunk_gc_reclaimed_meanwhile_is_built_again(store):
    """Another mount's gc may reclaim an unreferenced chunk after this mount's batch found it
    by its hash and before that batch commits: the commit must not point at the missing chunk
    (it is built again and stores the bytes anew). The lookup is made to return the reclaimed
    chunk once, which is what such a race looks like from the batch."""
    from store.services.gc import GcOptions, collect
    sess = store.sessions_ino
    data = random.Random(9).randbytes(300_000)
    old = store.make_node(sess, b"old", REG, UID, GID).id
    store.write(old, 0, data)
    store.fsync(old)
    stale = {store.catalog.reader().content.chunk_by_hash(d) for d in _chunk_hashes(data)}
    store.unlink(sess, b"old")
    store.fsync()
    collect(store, GcOptions(grace=0))
    assert all(store.catalog.reader().content.chunk_by_hash(d) is None for d in _chunk_hashes(data))
    real, served = store._known_chunks, []

    def lookup(digests):
        found = real(digests)
        missing = [d for d in digests if d not in found]
        if missing and not served:
            served.append(missing[0])
            found[missing[0]] = next(iter(stale))   # the chunk as it was before gc took it
        return found
    store._known_chunks = lookup
    new = store.make_node(sess, b"new", REG, UID, GID).id
    store.write(new, 0, data)
    store.fsync(new)
    assert served and store.read(new, 0, len(data)) == data
    check_consistency(store)


def _chunk_hashes(data: bytes) -> list[bytes]:
    from store.core import chunker
    return [chunker.chunk_hash(c) for c in chunker.cut_stream([data])]
