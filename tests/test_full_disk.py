"""A real full filesystem under the store, and out-of-memory safety of huge sizes.

The store lives on a small tmpfs; the writer fills it through the mount until the
kernel says ENOSPC. Contract checked:

- the writer is told: ENOSPC (or EIO) comes back from write(2) (staging file full) or
  from fsync(2) (packs/catalog full: the persistence batch fails and the durable
  barrier gets the errno) — never a silent loss of an fsynced file;
- every file whose fsync succeeded, up to the last one before ENOSPC, reads back byte for
  byte while the disk is full, after space returns and after a remount, and is still in
  the store that ``sessionfs verify --data`` checks;
- when space returns (tmpfs remounted bigger) the queued writes commit, new writes and
  fsyncs succeed, an unlink frees its references, and ``sessionfs verify --data`` is clean
  after umount.

The huge-size test bounds the daemon's peak memory (VmHWM), not samples of it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from mounting import FUSE_AVAILABLE, Mount, proc_status_kb, sessionfs

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE or os.geteuid() != 0,
                                reason="needs FUSE and root (mounts a tmpfs)")

MiB = 1024 * 1024


def _write_file(path: Path, data: bytes, *, fsync: bool) -> str | None:
    """Write ``data``; return None on success, else 'where:errno' of the first failure."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        return f"open:{errno.errorcode[exc.errno]}"
    stage = "write"
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:MiB])
            view = view[n:]
        if fsync:
            stage = "fsync"
            os.fsync(fd)
    except OSError as exc:
        try:
            os.close(fd)
        except OSError:
            pass
        return f"{stage}:{errno.errorcode[exc.errno]}"
    try:
        os.close(fd)
    except OSError as exc:
        return f"close:{errno.errorcode[exc.errno]}"
    return None


@pytest.fixture
def small_fs(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(fs)], check=True)
    try:
        yield fs
    finally:
        subprocess.run(["umount", "-l", str(fs)], capture_output=True)


def test_full_disk_enospc_then_recovery(small_fs, tmp_path):
    store, mnt = small_fs / "store", tmp_path / "mnt"
    m = Mount(store, mnt)
    m.start()
    try:
        d = m.sessions / "s1"
        d.mkdir()
        committed: dict[str, bytes] = {}
        for i in range(4):
            data = os.urandom(512 * 1024) + (b"committed %d\n" % i) * 1000
            assert _write_file(d / f"keep-{i}.bin", data, fsync=True) is None
            committed[f"keep-{i}.bin"] = data

        # Fill the disk: incompressible 2 MiB files, fsynced, until the writer is told.
        failure = None
        written = 0
        for i in range(60):
            data = os.urandom(2 * MiB)
            failure = _write_file(d / f"fill-{i:03d}.bin", data, fsync=True)
            if failure:
                break
            written += 1
            committed[f"fill-{i:03d}.bin"] = data
            # Reads of committed data keep working while the disk fills.
            name = f"keep-{i % 4}.bin"
            assert (d / name).read_bytes() == committed[name]
        assert failure is not None, "40 MiB tmpfs never reported a full disk"
        where, code = failure.split(":")
        print(f"\nfull disk: {written} fill files fsynced, then {where}() failed with {code}")
        log = (store / "sessionfs.log").read_text(errors="replace")
        print("\n".join(line for line in log.splitlines() if "failed" in line)[-600:])
        assert code == "ENOSPC", failure
        assert where in ("write", "fsync", "close"), failure
        assert written > 0, "the disk was full before any fill file"
        # Reads keep working while full: every fsynced file, byte for byte.
        _assert_committed(d, committed, "while the disk is full")
        # A second write while still full is also told, not silently accepted.
        again = _write_file(d / "while-full.bin", os.urandom(4 * MiB), fsync=True)
        assert again is not None and again.split(":")[1] in ("ENOSPC", "EIO"), again

        # Space returns: the queued writes commit, new writes succeed.
        subprocess.run(["mount", "-o", "remount,size=200m", str(small_fs)], check=True)
        fresh = os.urandom(3 * MiB)
        # The persistence worker retries the failed batch after a short delay.
        result = "never tried"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = _write_file(d / "after.bin", fresh, fsync=True)
            if result is None:
                break
            time.sleep(0.2)
        assert result is None, f"writes still fail after space returned: {result}"
        committed["after.bin"] = fresh
        _assert_committed(d, committed, "after space returned")
        # Deleting a file also works and frees its references (verify checks the counts).
        assert _write_file(d / "scratch.bin", os.urandom(2 * MiB), fsync=True) is None
        os.unlink(d / "scratch.bin")
        m.umount()
    finally:
        m.cleanup()
    out = sessionfs("verify", "--data", str(store), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    # Committed data survives the remount.
    m.start()
    try:
        _assert_committed(m.sessions / "s1", committed, "after the remount")
    finally:
        m.cleanup()


def _assert_committed(d: Path, committed: dict[str, bytes], when: str) -> None:
    """Every fsynced file reads back exactly (content, not size)."""
    wrong = {}
    for name, data in committed.items():
        try:
            if (d / name).read_bytes() != data:
                wrong[name] = "different bytes"
        except OSError as exc:
            wrong[name] = os.strerror(exc.errno)
    assert not wrong, f"{when}: fsynced files do not read back: {wrong}"


def test_huge_truncate_and_sparse_write_do_not_allocate(mount):
    d = mount.sessions / "big"
    d.mkdir()
    rss0 = proc_status_kb(mount.pid, "VmRSS")
    f = d / "huge-truncate"
    with open(f, "wb") as fh:
        os.truncate(fh.fileno(), 2 ** 40)
        os.fsync(fh.fileno())
    assert f.stat().st_size == 2 ** 40
    with open(f, "rb") as fh:
        fh.seek(2 ** 39)
        assert fh.read(4096) == b"\0" * 4096
    # Sparse write at a huge offset: succeeds sparsely, or EFBIG past the limit.
    g = d / "huge-offset"
    fd = os.open(g, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"tail", 2 ** 42)
        os.fsync(fd)
        with pytest.raises(OSError) as exc:
            os.pwrite(fd, b"x", 2 ** 62)
        assert exc.value.errno in (errno.EFBIG, errno.EINVAL)
        with pytest.raises(OSError) as exc:
            os.ftruncate(fd, 2 ** 62)
        assert exc.value.errno in (errno.EFBIG, errno.EINVAL)
    finally:
        os.close(fd)
    assert g.stat().st_size == 2 ** 42 + 4
    with open(g, "rb") as fh:
        fh.seek(2 ** 42 - 2)
        assert fh.read(6) == b"\0\0tail"
    # Shrink back down, then grow: still sparse.
    os.truncate(f, 10)
    os.truncate(f, 2 ** 41)
    with open(f, "rb") as fh:
        fh.seek(2 ** 40)
        assert fh.read(100) == b"\0" * 100
    peak = proc_status_kb(mount.pid, "VmHWM")
    print(f"\ndaemon: VmRSS {rss0 // 1024} MiB at the start, peak (VmHWM) {peak // 1024} MiB")
    assert peak < 300 * 1024, f"daemon's peak memory reached {peak // 1024} MiB"
    mount.umount()
    out = sessionfs("verify", "--data", str(mount.store), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
