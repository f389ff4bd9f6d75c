"""Faults of a shared store's servers under a real mount: SeaweedFS stopped mid-write,
PostgreSQL restarted mid-commit. Nothing closed is lost; the mount serves throughout.

SeaweedFS is a private one here (stopping the session's would break other tests); PostgreSQL
is the session's, restarted ``immediate`` (as a crash) between two tests' databases.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections import Counter
from pathlib import Path

import pytest

from contrib.bench.mount_bench import fsync_path
from contrib.scaleout.seaweed import start_seaweed
from mounting import FUSE_AVAILABLE, Mount, sessionfs
from pg_server import pg_url  # noqa: F401 - a fixture
from shared_store import S3_VARIABLES, SharedStore

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")


def content(name: str) -> bytes:
    return (name.encode() + b"\n") * 3000 + os.urandom(64)


def check_all(m: Mount, written: dict[str, bytes]) -> None:
    got = {name: (m.sessions / "w" / name).read_bytes() for name in written}
    lost = [name for name, data in written.items() if got[name] != data]
    assert lost == [], f"closed files lost or wrong: {lost}"


def check_after_remount(m: Mount, written: dict[str, bytes]) -> None:
    """Unmounted, ``verify --data`` is clean; mounted again, every closed file is there whole."""
    m.umount()
    r = sessionfs("verify", str(m.store), "--data", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    m.start()
    check_all(m, written)


@pytest.fixture
def private_weed(tmp_path, monkeypatch):
    weed = start_seaweed(tmp_path / "weed", access_key=f"k{secrets.token_hex(4)}", secret_key=secrets.token_hex(16),
                         bucket="faults")
    for name in S3_VARIABLES:
        if name in weed.env:
            monkeypatch.setenv(name, weed.env[name])
    try:
        yield weed
    finally:
        weed.stop()


def test_seaweedfs_stopped_mid_write(tmp_path, private_weed, pg_url):
    """Close returns, fsync is EIO after the bounded retry, reads of what was read before keep
    working, and everything closed commits once the server is back."""
    store = SharedStore(private_weed.url("p"), pg_url).init(tmp_path / "store")
    m = Mount(store, tmp_path / "mnt").start()
    try:
        (m.sessions / "w").mkdir()
        written = {}
        for i in range(3):
            written[f"before{i}"] = content(f"before{i}")
            (m.sessions / "w" / f"before{i}").write_bytes(written[f"before{i}"])
        fsync_path(m.sessions / "w" / "before2")
        check_all(m, written)                                # read once: in the caches now
        private_weed.stop()
        for i in range(5):                                   # close() returns: staged locally
            written[f"during{i}"] = content(f"during{i}")
            (m.sessions / "w" / f"during{i}").write_bytes(written[f"during{i}"])
        with pytest.raises(OSError) as failed:
            fsync_path(m.sessions / "w" / "during4")
        assert failed.value.errno == errno.EIO
        check_all(m, {k: v for k, v in written.items() if k.startswith("before")})
        print(f"\nSeaweedFS down: 5 closes returned, fsync {errno.errorcode[failed.value.errno]}")
        private_weed.start()
        fsync_path(m.sessions / "w" / "during4")             # the queued commits go through now
        check_all(m, written)
        check_after_remount(m, written)
    finally:
        m.cleanup()


def test_postgresql_restarted_mid_commit(tmp_path, shared_store, postgres):
    """A writer closing and fsyncing files while the catalog's server crashes and restarts: the
    errors it sees are EIO (a create or fsync while the server is down), the mount keeps serving, and every file whose close
    returned is there whole after the restart."""
    store = shared_store.init(tmp_path / "store")
    m = Mount(store, tmp_path / "mnt").start()
    try:
        (m.sessions / "w").mkdir()
        written: dict[str, bytes] = {}
        errors: list[str] = []
        started, stop = threading.Event(), threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                name = f"f{i}"
                data = content(name)
                try:
                    (m.sessions / "w" / name).write_bytes(data)
                    written[name] = data
                    started.set()
                    if i % 3 == 0:
                        fsync_path(m.sessions / "w" / name)
                except OSError as exc:
                    errors.append(errno.errorcode.get(exc.errno, str(exc.errno)))
                    stop.wait(0.05)          # the server is down: no busy loop
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert started.wait(60)
            postgres.restart("immediate")
            (m.sessions / "w" / "after").write_bytes(b"after the restart")
            written["after"] = b"after the restart"
        finally:
            stop.set()
            thread.join(120)
        print(f"\nPostgreSQL restart: {len(written)} files closed, writer errors: {dict(Counter(errors))}")
        assert set(errors) <= {"EIO"}, Counter(errors)
        fsync_path(m.sessions / "w" / "after")
        check_all(m, written)
        check_after_remount(m, written)
    finally:
        m.cleanup()
