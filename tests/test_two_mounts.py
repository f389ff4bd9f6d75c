"""Two mounts of one shared store (two daemons, two STORE directories, one SeaweedFS and one
PostgreSQL): what one mount closes, the other opens whole; writers on both; rename and unlink
races between them; one killed while the other works on.

A file's versions are distinct whole contents (``version``): any read on either mount must be
one of them, never a torn or mixed one. B learns of A's commits by notification, so a test
waits (up to ``SETTLE_S``) for B to show what A committed; the delay itself is measured by
``contrib/bench/two_mounts.py``, not asserted here.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from mounting import FUSE_AVAILABLE, Mount, sessionfs

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

#: Generous bound for a commit on one mount to show on the other (notification + attr timeout).
SETTLE_S = 30


def version(tag: str, n: int, size: int = 150_000) -> bytes:
    """A whole version of a file: every 64-byte line names it, so a mix of two is detectable."""
    line = f"{tag}:{n:08d}:".encode().ljust(63, b"x") + b"\n"
    return line * (size // 64 + n % 7)


def read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def wait_for(probe, want, what: str):
    """Poll ``probe()`` until it returns ``want``; fail naming ``what`` after ``SETTLE_S``."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        got = probe()
        if got == want:
            return
        if time.monotonic() > deadline:
            if isinstance(want, dict) and isinstance(got, dict):
                got = {k: (got.get(k) or b"")[:24] for k in set(got) | set(want) if got.get(k) != want.get(k)}
                want = {k: (want.get(k) or b"")[:24] for k in got}
            raise AssertionError(f"{what}: still {got!r:.300} after {SETTLE_S} s, not {want!r:.300}")
        time.sleep(0.02)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def verify_clean(store: Path) -> None:
    r = sessionfs("verify", str(store), "--data", check=False)
    assert r.returncode == 0, f"sessionfs verify --data found problems:\n{r.stdout}{r.stderr}"


@pytest.fixture
def mounts(tmp_path, shared_store):
    """Mounts A and B of one new shared store, each of its own STORE directory."""
    a = Mount(shared_store.init(tmp_path / "store-a"), tmp_path / "mnt-a")
    b = Mount(shared_store.init(tmp_path / "store-b"), tmp_path / "mnt-b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.cleanup()
        b.cleanup()


def whole_versions_only(path: Path, tag: str, stop: threading.Event, seen: list, bad: list) -> None:
    """Read ``path`` until ``stop``; record each content, and any that is not a whole version."""
    while not stop.is_set():
        data = read_or_none(path)
        if data is None:
            continue
        n = int(data[len(tag) + 1:len(tag) + 9]) if data[:len(tag) + 1] == f"{tag}:".encode() else -1
        if data != version(tag, n):
            bad.append((len(data), sorted({line[:len(tag) + 9] for line in data.split(b"\n") if line})))
        elif not seen or seen[-1] != n:
            seen.append(n)


def test_a_close_is_seen_whole_on_b(mounts):
    """Open after close: each version A closes, B opens whole (a reader on B while A rewrites in
    place may see the truncated file, as on one local file system; see the atomic save below)."""
    a, b = mounts
    (a.sessions / "s").mkdir()
    wait_for(lambda: (b.sessions / "s").is_dir(), True, "the directory made on A, on B")
    for n in range(6):
        (a.sessions / "s" / "f").write_bytes(version("v", n))
        wait_for(lambda: read_or_none(b.sessions / "s" / "f"), version("v", n), f"version {n} on B")
        assert (a.sessions / "s" / "f").read_bytes() == version("v", n)


def test_an_atomic_save_on_a_is_seen_whole_on_b(mounts):
    a, b = mounts
    (a.sessions / "s").mkdir()
    (a.sessions / "s" / "summary.json").write_bytes(version("v", 0))
    wait_for(lambda: read_or_none(b.sessions / "s" / "summary.json"), version("v", 0), "the first save on B")
    stop, seen, bad = threading.Event(), [], []
    reader = threading.Thread(target=whole_versions_only,
                              args=(b.sessions / "s" / "summary.json", "v", stop, seen, bad))
    reader.start()
    try:
        for n in range(1, 10):
            tmp = a.sessions / "s" / "summary.json.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, version("v", n))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, a.sessions / "s" / "summary.json")
        wait_for(lambda: read_or_none(b.sessions / "s" / "summary.json"), version("v", 9), "the last save on B")
    finally:
        stop.set()
        reader.join(60)
    assert bad == [], f"B read {len(bad)} torn or mixed saves, e.g. {bad[0]!r}"
    assert seen == sorted(seen), f"B saw saves out of order: {seen}"
    assert not (b.sessions / "s" / "summary.json.tmp").exists()


def test_open_o_creat_on_a_opens_what_b_created_behind_a_negative_entry(mounts):
    """A looked a name up (absent: its kernel caches that for the entry timeout), B creates it
    (a name is committed when create returns), A opens it at once with O_CREAT and no O_EXCL: as on one local file system A opens B's file, it does
    not fail with EEXIST; with O_EXCL it does."""
    a, b = mounts
    (a.sessions / "n").mkdir()
    wait_for(lambda: (b.sessions / "n").is_dir(), True, "the directory made on A, on B")
    for i in range(30):
        name = f"f{i}"
        assert not (a.sessions / "n" / name).exists()
        os.close(os.open(b.sessions / "n" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        fd = os.open(a.sessions / "n" / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, b", then A")
        finally:
            os.close(fd)
        assert (a.sessions / "n" / name).read_bytes() == b", then A"
        with pytest.raises(FileExistsError):
            os.open(a.sessions / "n" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    verify_clean(a.store)


def test_writers_on_both_mounts_in_parallel(mounts):
    a, b = mounts
    (a.sessions / "p").mkdir()
    wait_for(lambda: (b.sessions / "p").is_dir(), True, "the directory made on A, on B")
    errors: list = []

    def writer(m: Mount, tag: str) -> None:
        try:
            for n in range(20):
                (m.sessions / "p" / f"{tag}-{n}").write_bytes(version(tag, n, 20_000))
                (m.sessions / "p" / "both").write_bytes(version(tag, n, 30_000))
        except OSError as exc:
            errors.append(f"{tag}: {exc!r}")

    threads = [threading.Thread(target=writer, args=(m, tag)) for m, tag in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    want = {f"{tag}-{n}": version(tag, n, 20_000) for tag in "ab" for n in range(20)}
    last = (version("a", 19, 30_000), version("b", 19, 30_000))
    # Each close commits a little later (the persistence worker): wait until both mounts show
    # one writer's last version of the file both wrote, the same one.
    wait_for(lambda: read_or_none(a.sessions / "p" / "both") in last
             and read_or_none(a.sessions / "p" / "both") == read_or_none(b.sessions / "p" / "both"), True,
             "one writer's last whole version of the file both wrote, on both mounts")
    want["both"] = read_or_none(a.sessions / "p" / "both")
    for m in (a, b):
        wait_for(lambda: tree(m.sessions / "p"), want, f"the files written on both, on {m.path.name}")
    a.umount()
    verify_clean(a.store)


def race(ops) -> list:
    """Run each of ``ops`` in its own thread, released at once; their outcomes (None or errno)."""
    go = threading.Barrier(len(ops))
    out: list = [None] * len(ops)

    def run(i, op):
        go.wait()
        try:
            op()
        except OSError as exc:
            out[i] = exc.errno

    threads = [threading.Thread(target=run, args=(i, op)) for i, op in enumerate(ops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_rename_and_unlink_races_between_mounts(mounts):
    a, b = mounts
    (a.sessions / "r").mkdir()
    count = 6
    for n in range(count):
        (a.sessions / "r" / f"f{n}").write_bytes(version("f", n, 5_000))
        (a.sessions / "r" / f"u{n}").write_bytes(version("u", n, 5_000))
    for n in range(count):
        wait_for(lambda: read_or_none(b.sessions / "r" / f"f{n}"), version("f", n, 5_000), f"f{n} on B")
        wait_for(lambda: (b.sessions / "r" / f"u{n}").exists(), True, f"u{n} on B")
    for n in range(count):
        renames = race([lambda: os.rename(a.sessions / "r" / f"f{n}", a.sessions / "r" / f"a{n}"),
                        lambda: os.rename(b.sessions / "r" / f"f{n}", b.sessions / "r" / f"b{n}")])
        assert sorted(renames, key=str) == sorted([None, errno.ENOENT], key=str), f"renames of f{n}: {renames}"
        unlinks = race([lambda: os.unlink(a.sessions / "r" / f"u{n}"),
                        lambda: os.unlink(b.sessions / "r" / f"u{n}")])
        assert sorted(unlinks, key=str) == sorted([None, errno.ENOENT], key=str), f"unlinks of u{n}: {unlinks}"
    want = {}
    for n in range(count):
        winner = "a" if (a.sessions / "r" / f"a{n}").exists() else "b"
        want[f"{winner}{n}"] = version("f", n, 5_000)
    for m in (a, b):
        wait_for(lambda: tree(m.sessions / "r"), want, f"the race's outcome on {m.path.name}")
    a.umount()
    b.umount()
    verify_clean(a.store)


def test_kill_of_a_while_b_reads_and_writes_then_a_remounted(mounts):
    a, b = mounts
    (a.sessions / "k").mkdir()
    for n in range(6):
        (a.sessions / "k" / f"a{n}").write_bytes(version("a", n, 40_000))
    fd = os.open(a.sessions / "k" / "a0", os.O_WRONLY)
    os.fsync(fd)
    os.close(fd)
    committed = tree(a.sessions / "k")
    wait_for(lambda: tree(b.sessions / "k"), committed, "A's closed files on B")
    stop, errors = threading.Event(), []

    def b_works() -> None:
        n = 0
        try:
            while not stop.is_set():
                (b.sessions / "k" / f"b{n}").write_bytes(version("b", n, 40_000))
                assert (b.sessions / "k" / f"a{n % 6}").read_bytes() == version("a", n % 6, 40_000)
                n += 1
        except (OSError, AssertionError) as exc:
            errors.append(repr(exc))

    worker = threading.Thread(target=b_works)
    worker.start()
    try:
        time.sleep(0.5)
        a.kill9()
        time.sleep(1.0)
    finally:
        stop.set()
        worker.join(120)
    assert errors == [], f"B failed while A died: {errors}"
    final_b = tree(b.sessions / "k")
    assert {k: v for k, v in final_b.items() if k.startswith("a")} == committed
    assert any(k.startswith("b") for k in final_b), "B wrote nothing while A died"
    a.start()
    assert tree(a.sessions / "k") == final_b, "A remounted does not show what B shows"
    a.umount()
    b.umount()
    verify_clean(a.store)


def test_maintenance_runs_on_one_mount_at_a_time(mounts, shared_store, tmp_path):
    """While one process of the store holds the maintenance turn, gc and compress run by hand
    from a third STORE directory are refused with a message; once it is free they run."""
    from store.backends.catalog.postgres.catalog import PostgresCatalog
    from store.services.exclusive import MAINTENANCE
    a, b = mounts
    (a.sessions / "g").mkdir()
    (a.sessions / "g" / "f").write_bytes(version("g", 0))
    (a.sessions / "g" / "f").unlink()
    c = shared_store.init(tmp_path / "store-c")
    holder = PostgresCatalog(shared_store.catalog)
    try:
        assert holder.try_exclusive(MAINTENANCE)
        for cmd in (("gc", str(c), "--grace", "0"), ("compress", str(c))):
            r = sessionfs(*cmd, check=False)
            assert r.returncode != 0 and "another mount of this store is running gc" in r.stderr, r.stderr
        holder.release_exclusive(MAINTENANCE)
        sessionfs("gc", str(c), "--grace", "0")
        sessionfs("compress", str(c))
    finally:
        holder.close()
    wait_for(lambda: (b.sessions / "g").is_dir() and not (b.sessions / "g" / "f").exists(), True,
             "the unlinked file gone on B")
