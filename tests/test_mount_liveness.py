"""Files open on one mount of a shared store and unlinked on another (issue 15, liveness).

The holder keeps the whole file until it lets go, a restarting mount does not delete it, and
a holder killed with ``kill -9`` keeps it alive only until its heartbeat expires. The expiry
is short here (``SESSIONFS_MOUNT_EXPIRY``); the catalog is read directly to see the inode.
"""

from __future__ import annotations

import contextlib
import os
import time

import psycopg
import pytest

from mounting import FUSE_AVAILABLE, Mount
from test_two_mounts import SETTLE_S, verify_clean, version, wait_for

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

#: Short enough for the kill test, long enough that a loaded machine's live mount never expires.
EXPIRY_S = 4


@pytest.fixture
def mounts(tmp_path, shared_store, monkeypatch):
    """Mounts A and B of one new shared store, expiring ``EXPIRY_S`` after their last heartbeat."""
    monkeypatch.setenv("SESSIONFS_MOUNT_EXPIRY", str(EXPIRY_S))
    a = Mount(shared_store.init(tmp_path / "store-a"), tmp_path / "mnt-a")
    b = Mount(shared_store.init(tmp_path / "store-b"), tmp_path / "mnt-b")
    try:
        a.start()
        b.start()
        yield a, b, shared_store.catalog
    finally:
        a.cleanup()
        b.cleanup()


def catalog_state(url: str, ino: int) -> tuple[bool, int, int]:
    """(inode ``ino`` exists, mounts registered, leases on ``ino``), read in one statement."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM inodes WHERE id = %s), (SELECT count(*) FROM mounts), "
                            "(SELECT count(*) FROM leases WHERE ino = %s)", (ino, ino)).fetchone()


def open_on_b_unlink_on_a(a: Mount, b: Mount) -> tuple[int, int, bytes]:
    """A file written on A, opened on B, unlinked on A: (B's descriptor, inode, content)."""
    data = version("held", 1)
    (a.sessions / "held").write_bytes(data)
    wait_for(lambda: (b.sessions / "held").exists() and (b.sessions / "held").read_bytes(), data, "the file on B")
    fd = os.open(b.sessions / "held", os.O_RDWR)
    ino = os.fstat(fd).st_ino
    os.unlink(a.sessions / "held")
    wait_for(lambda: (b.sessions / "held").exists(), False, "the unlink on B")
    return fd, ino, data


def read_all(fd: int) -> bytes:
    return os.pread(fd, 1 << 24, 0)


def test_a_file_open_on_b_lives_while_a_unlinks_and_restarts(mounts):
    a, b, url = mounts
    fd, ino, data = open_on_b_unlink_on_a(a, b)
    try:
        wait_for(lambda: catalog_state(url, ino)[2], 1, "B's lease on the unlinked inode")
        assert read_all(fd) == data, "B's open file lost its data when A unlinked it"
        more = version("more", 2, 10_000)
        os.pwrite(fd, more, len(data))
        os.fsync(fd)
        a.remount()         # A's recovery sweeps the unlinked inodes: not one B holds
        time.sleep(EXPIRY_S / 2)    # two heartbeats and sweeps of each mount run meanwhile
        assert read_all(fd) == data + more, "B's open file changed after A restarted"
        assert catalog_state(url, ino)[0], "the inode B holds was deleted"
    finally:
        os.close(fd)
    wait_for(lambda: catalog_state(url, ino)[0], False, "the inode deleted after B closed it")
    a.umount()
    b.umount()
    verify_clean(a.store)


def test_a_killed_holder_keeps_the_file_only_until_it_expires(mounts):
    a, b, url = mounts
    fd, ino, data = open_on_b_unlink_on_a(a, b)
    wait_for(lambda: catalog_state(url, ino)[2], 1, "B's lease on the unlinked inode")
    b.kill9()
    with contextlib.suppress(OSError):
        os.close(fd)        # the dead mount's descriptor (ENOTCONN): no release reaches B
    deadline = time.monotonic() + SETTLE_S + EXPIRY_S
    while True:
        exists, registered, _ = catalog_state(url, ino)
        if not exists:
            break
        assert time.monotonic() < deadline, f"the inode B held still exists {SETTLE_S + EXPIRY_S} s after its kill"
        time.sleep(0.05)
    assert registered == 1, "the inode B held was deleted before B expired"
    b.start()
    a.umount()
    b.umount()
    assert catalog_state(url, ino)[1] == 0, "a clean stop leaves its mount registered"
    verify_clean(a.store)
