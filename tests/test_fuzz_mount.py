"""Differential fuzzing of the mount: the same random file operations on sessionfs and on a
reference directory on the local disk (ext4 here; tmpfs or any local filesystem will do).

A hypothesis ``RuleBasedStateMachine`` applies each operation to both trees and compares the
outcome (return value or errno): open with O_CREAT/O_EXCL/O_TRUNC/O_APPEND/O_DIRECT, write,
pwrite (odd offsets, bursts of tiny writes, multi-megabyte writes, sparse writes up to 2**40),
read, pread, lseek, ftruncate/truncate up and down, copy_file_range, posix_fallocate, fsync,
close, rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE; over files and directories), link,
unlink, mkdir, rmdir, mkfifo, symlink, chmod, utime and user xattrs. After every step it
compares the whole trees: names in every directory (each exactly once), types, permission
bits, owners, link counts, sizes, contents (sampled around every offset the run touched for
huge sparse files), symlink targets, xattrs, what every open descriptor sees (``fstat`` and
content), and whether mtime/ctime moved. atime is not compared (relatime), nor
st_blocks/st_blksize or directory sizes; timestamps only for "changed or not". At the end the
mount is remounted and every run's final tree compared again, so what was committed to the
store (not just what the daemon's overlays and the kernel's caches show) is checked too.

Every divergence is a bug of the mount; the few differences that come from the kernel's FUSE
module or from pyfuse3 and that no daemon can change are noted where the rules avoid them.
The CI budget is fixed (30 runs of 50 steps, about 1,500 compared steps);
``SESSIONFS_FUZZ_EXAMPLES`` and ``SESSIONFS_FUZZ_STEPS`` raise it for long runs, e.g.
``SESSIONFS_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_mount.py -s`` (``-s`` prints the step
count and the daemon's peak memory; divergences are also written to ``divergences.log`` in the
test's tmp dir with the steps that led to them).
"""
from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import random
import stat
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from mounting import proc_status_kb
from shared_store import on_both_stores


EXAMPLES = int(os.environ.get("SESSIONFS_FUZZ_EXAMPLES", "30"))
STEPS = int(os.environ.get("SESSIONFS_FUZZ_STEPS", "50"))
#: Fewer examples on a shared store (each step crosses S3 and PostgreSQL).
SHARED_EXAMPLES = int(os.environ.get("SESSIONFS_FUZZ_SHARED_EXAMPLES", "15"))

# Paths every operation draws from: files and directories compete for the same names, so type
# mismatches (EISDIR, ENOTDIR, ENOTEMPTY, EEXIST) come up as often as the happy paths.
PATHS = ["a", "b", "c", "D", "D/a", "D/b", "D/E", "D/E/a", "F", "F/a"]
MODES = [0o644, 0o600, 0o755, 0o640, 0o4755, 0o2755, 0o1777, 0o000]
OFFSETS = st.one_of(st.integers(0, 70_000), st.sampled_from([4095, 4096, 65535, 65536, 131071, 131072,
                                                             (1 << 20) + 3, (1 << 30) - 1, (1 << 40) + 17]))
SIZES = st.one_of(st.integers(0, 70_000), st.sampled_from([0, 1, 4095, 4096, 4097, 131073, (1 << 20) + 5,
                                                           (1 << 32) + 1, (1 << 40) + 3]))
DATA = st.binary(min_size=1, max_size=3000)
FULL_COMPARE = 1 << 20          # files up to this size are compared whole
WINDOW = 4096 + 64              # else: this much around every offset the run touched
ALIGN = 4096                    # O_DIRECT I/O is aligned for the reference filesystem's sake

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)

STATS = {"steps": 0, "examples": 0, "peak_rss_kb": 0}
FINISHED: list = []                # (roots, touched offsets) of every run, compared again after a remount
DIVERGENCE_LOG: list[Path] = []     # where divergences are also written (a timing-dependent one may not replay)


def _renameat2(old: str, new: str, flags: int) -> None:
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def logged(fn):
    """Keep each machine's step history; write a divergence with it to the log before failing
    (a timing-dependent divergence may not replay, and hypothesis then reports only flakiness)."""
    @functools.wraps(fn)
    def wrapper(self, **kw):
        if fn.__name__ != "trees_agree":
            self.history.append(f"{fn.__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(kw.items()))})")
        try:
            return fn(self, **kw)
        except AssertionError as exc:
            if DIVERGENCE_LOG:
                with open(DIVERGENCE_LOG[0], "a") as f:
                    f.write(f"--- {str(exc).splitlines()[0]}\n    after: " + "\n           ".join(self.history[-300:])
                            + "\n")
            raise
    return wrapper


def outcome(fn, *args):
    """('ok', value) or ('err', errno name): what both sides must agree on."""
    try:
        return "ok", fn(*args)
    except OSError as exc:
        return "err", errno.errorcode.get(exc.errno, exc.errno)


class Handle:
    def __init__(self, path: str, fds: tuple[int, int], flags: int, direct: bool):
        self.path = path
        self.fds = fds
        self.flags = flags
        self.direct = direct


class MountVsReference(RuleBasedStateMachine):
    mount_dir: Path      # set by the test: a directory inside the mount's sessions/
    ref_dir: Path        # and one on the reference filesystem

    def __init__(self):
        super().__init__()
        name = f"fz-{uuid.uuid4().hex[:12]}"
        self.roots = (self.mount_dir / name, self.ref_dir / name)
        for r in self.roots:
            r.mkdir()
        self.handles: list[Handle] = []
        self.history: list[str] = []
        self.touched: set[int] = {0}
        self.prev: dict | None = None
        self.fifo_written: set[int] = set()     # mount-side inodes of FIFOs written this step
        STATS["examples"] += 1

    def teardown(self):
        FINISHED.append((self.roots, frozenset(self.touched)))
        for h in self.handles:
            for fd in h.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.handles.clear()

    # -- helpers -----------------------------------------------------------------
    def both(self, fn, *rel_args, extra=()):
        """Run ``fn(path..., *extra)`` on each side; assert the outcomes agree; return it."""
        results = []
        for root in self.roots:
            args = [str(root / a) for a in rel_args]
            results.append(outcome(fn, *args, *extra))
        assert results[0] == results[1], f"{fn.__name__}{tuple(rel_args) + tuple(extra)}: mount {results[0]} " \
                                         f"!= reference {results[1]}"
        return results[0]

    def on_handle(self, h: Handle, fn, *extra):
        results = [outcome(fn, fd, *extra) for fd in h.fds]
        assert results[0] == results[1], f"{fn.__name__} on {h.path} (flags {h.flags:#o}) {extra!r}: " \
                                         f"mount {results[0]} != reference {results[1]}"
        return results[0]

    def pick(self, i: int) -> Handle:
        return self.handles[i % len(self.handles)]

    # -- opening and closing -----------------------------------------------------
    @precondition(lambda self: len(self.handles) < 8)
    @rule(path=st.sampled_from(PATHS),
          acc=st.sampled_from([os.O_RDONLY, os.O_WRONLY, os.O_RDWR]),
          creat=st.booleans(), excl=st.booleans(), trunc=st.booleans(), append=st.booleans(),
          direct=st.integers(0, 5), mode=st.sampled_from(MODES))
    @logged
    def open(self, path, acc, creat, excl, trunc, append, direct, mode):
        flags = acc | os.O_CLOEXEC | os.O_NONBLOCK      # O_NONBLOCK: opening a FIFO must not hang
        flags |= (os.O_CREAT if creat else 0) | (os.O_EXCL if excl else 0) | (os.O_TRUNC if trunc else 0)
        flags |= os.O_APPEND if append else 0
        use_direct = direct == 0
        fds = []
        results = []
        for root in self.roots:
            f = flags | (os.O_DIRECT if use_direct else 0)
            res = outcome(os.open, str(root / path), f, mode)
            if res == ("err", "EINVAL") and use_direct:
                # A filesystem may refuse O_DIRECT (tmpfs; and the kernel's FUSE module refuses it
                # for directories whatever the daemon says): then that side goes without.
                res = outcome(os.open, str(root / path), flags, mode)
            results.append(res)
            if res[0] == "ok":
                fds.append(res[1])
        if len(fds) == 2:
            self.handles.append(Handle(path, (fds[0], fds[1]), flags, use_direct))
        else:
            for fd in fds:
                os.close(fd)
            assert results[0] == results[1], \
                f"open({path}, {flags:#o}, {mode:#o}): mount {results[0]} != reference {results[1]}"
        if trunc:
            self.touched.add(0)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7))
    @logged
    def close(self, i):
        h = self.handles.pop(i % len(self.handles))
        for fd in h.fds:
            os.close(fd)

    # -- data ----------------------------------------------------------------------
    @staticmethod
    def _undefined_direct_append(h: Handle) -> bool:
        """An O_DIRECT|O_APPEND write lands at EOF; at an unaligned EOF the reference refuses it."""
        return h.direct and bool(h.flags & os.O_APPEND) and os.fstat(h.fds[1]).st_size % ALIGN != 0

    def _buffer(self, h: Handle, data: bytes):
        if not h.direct:
            return data
        buf = mmap.mmap(-1, len(data))     # page-aligned, as O_DIRECT wants
        buf.write(data)
        return buf

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), offset=OFFSETS, data=DATA)
    @logged
    def pwrite(self, i, offset, data):
        h = self.pick(i)
        if self._undefined_direct_append(h):
            return
        if h.direct:
            offset -= offset % ALIGN
            data = (data * (ALIGN // len(data) + 1))[:ALIGN]
        self.touched.add(offset)
        buf = self._buffer(h, data)
        self.on_handle(h, os.pwrite, buf, offset)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), offset=st.integers(0, 3 << 20), n=st.integers(100_000, 1_500_000),
          seed=st.integers(0, 2**32), repeat=st.booleans())
    @logged
    def big_pwrite(self, i, offset, n, seed, repeat):
        """Writes larger than one FUSE request and than a chunk, into committed data or past it."""
        h = self.pick(i)
        if h.direct or self._undefined_direct_append(h):
            return
        rnd = random.Random(seed)
        # repeat: the same block many times over (dedup hits), else random bytes
        data = rnd.randbytes(4096) * (n // 4096 + 1) if repeat else rnd.randbytes(n)
        data = data[:n]
        self.touched.update(offset + k * n // 5 for k in range(6))
        self.on_handle(h, os.pwrite, data, offset)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), data=DATA)
    @logged
    def write(self, i, data):
        h = self.pick(i)
        if self._undefined_direct_append(h):
            return
        seekable = stat.S_ISREG(os.fstat(h.fds[1]).st_mode)      # not a FIFO or a directory
        if h.direct:
            data = (data * (ALIGN // len(data) + 1))[:ALIGN]
            for fd in h.fds if seekable else ():
                pos = os.lseek(fd, 0, os.SEEK_CUR)
                os.lseek(fd, pos - pos % ALIGN, os.SEEK_SET)
        if seekable:
            self.touched.add(os.lseek(h.fds[1], 0, os.SEEK_CUR))
            self.touched.add(os.fstat(h.fds[1]).st_size)
        elif stat.S_ISFIFO(os.fstat(h.fds[1]).st_mode):
            # The kernel's pipe code carries FIFO data and FUSE inodes are S_NOCMTIME: no
            # request reaches the daemon, and the FIFO's times cannot move on any FUSE mount.
            self.fifo_written.add(os.fstat(h.fds[0]).st_ino)
        self.on_handle(h, os.write, self._buffer(h, data))

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), start=st.integers(0, 9000), writes=st.lists(
        st.tuples(st.integers(0, 700), st.binary(min_size=1, max_size=13)), min_size=2, max_size=40))
    @logged
    def many_small_writes(self, i, start, writes):
        h = self.pick(i)
        if h.direct:
            return
        self.touched.add(start)
        for off, data in writes:
            self.on_handle(h, os.pwrite, data, start + off)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), offset=OFFSETS, n=st.integers(0, 10_000))
    @logged
    def pread(self, i, offset, n):
        h = self.pick(i)
        if h.direct:
            offset -= offset % ALIGN
            n = ALIGN
            results = []
            for fd in h.fds:
                buf = mmap.mmap(-1, n)
                res = outcome(os.preadv, fd, [buf], offset)
                results.append(res if res[0] == "err" else ("ok", bytes(buf[:res[1]])))
            assert results[0] == results[1], f"O_DIRECT pread {h.path} @{offset}: {results}"
            return
        self.on_handle(h, os.pread, n, offset)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), n=st.integers(0, 5000))
    @logged
    def read(self, i, n):
        h = self.pick(i)
        if h.direct:
            return
        self.on_handle(h, os.read, n)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), pos=st.integers(-100, 100_000),
          whence=st.sampled_from([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END]))
    @logged
    def lseek(self, i, pos, whence):
        h = self.pick(i)
        if stat.S_ISDIR(os.fstat(h.fds[1]).st_mode):
            return      # directory offsets are the kernel's business (ext4 refuses SEEK_END, FUSE does not)
        self.on_handle(h, os.lseek, pos, whence)

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), size=SIZES)
    @logged
    def ftruncate(self, i, size):
        self.touched.add(size)
        self.on_handle(self.pick(i), os.ftruncate, size)

    @rule(path=st.sampled_from(PATHS), size=SIZES)
    @logged
    def truncate(self, path, size):
        self.touched.add(size)
        self.both(os.truncate, path, extra=(size,))

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), j=st.integers(0, 7), count=st.integers(0, 200_000),
          off_in=st.integers(0, 100_000), off_out=st.integers(0, 100_000))
    @logged
    def copy_file_range(self, i, j, count, off_in, off_out):
        src, dst = self.pick(i), self.pick(j)
        if src.direct or dst.direct:
            return
        self.touched.update((off_in, off_out))
        results = [outcome(os.copy_file_range, src.fds[k], dst.fds[k], count, off_in, off_out) for k in (0, 1)]
        assert results[0] == results[1], f"copy_file_range {src.path} -> {dst.path}: mount {results[0]} != " \
                                         f"reference {results[1]}"

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), offset=st.integers(0, 1 << 20), length=st.integers(0, 1 << 20))
    @logged
    def posix_fallocate(self, i, offset, length):
        h = self.pick(i)
        # pyfuse3 has no fallocate handler, so on the mount glibc emulates posix_fallocate with
        # pread+pwrite: that needs a readable, non-append, buffered descriptor (known limitation).
        if h.direct or h.flags & os.O_APPEND or (h.flags & os.O_ACCMODE) != os.O_RDWR:
            return
        self.touched.update((offset, offset + length))
        self.on_handle(h, os.posix_fallocate, offset, length)
        self.prev = None    # the emulation writes only where a block reads as zeros: times differ from ext4's

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 7), data_only=st.booleans())
    @logged
    def fsync(self, i, data_only):
        self.on_handle(self.pick(i), os.fdatasync if data_only else os.fsync)

    # -- names -------------------------------------------------------------------------
    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS),
          flags=st.sampled_from([0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    @logged
    def rename(self, src, dst, flags):
        if flags:
            self.both(_renameat2, src, dst, extra=(flags,))
        else:
            self.both(os.rename, src, dst)

    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS))
    @logged
    def link(self, src, dst):
        self.both(os.link, src, dst)

    @rule(path=st.sampled_from(PATHS))
    @logged
    def unlink(self, path):
        self.both(os.unlink, path)

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from([0o755, 0o700, 0o2775, 0o1777]))
    @logged
    def mkdir(self, path, mode):
        self.both(os.mkdir, path, extra=(mode,))

    @rule(path=st.sampled_from(PATHS))
    @logged
    def rmdir(self, path):
        self.both(os.rmdir, path)

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from(MODES))
    @logged
    def chmod(self, path, mode):
        self.both(os.chmod, path, extra=(mode,))

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from([0o644, 0o600]))
    @logged
    def mkfifo(self, path, mode):
        self.both(os.mkfifo, path, extra=(mode,))

    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(["user.a", "user.b", "user.sessionfs.x"]),
          value=st.binary(max_size=300), flags=st.sampled_from([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE]))
    @logged
    def setxattr(self, path, name, value, flags):
        self.both(os.setxattr, path, extra=(name, value, flags))

    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(["user.a", "user.b"]))
    @logged
    def removexattr(self, path, name):
        self.both(os.removexattr, path, extra=(name,))

    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(["user.a", "user.b"]))
    @logged
    def getxattr(self, path, name):
        self.both(os.getxattr, path, extra=(name,))

    @rule(dest=st.sampled_from(PATHS + ["../a", "nowhere"]), path=st.sampled_from(PATHS))
    @logged
    def symlink(self, dest, path):
        results = [outcome(os.symlink, dest, str(root / path)) for root in self.roots]
        assert results[0] == results[1], f"symlink({dest}, {path}): {results}"

    @rule(path=st.sampled_from(PATHS), ns=st.tuples(st.integers(-2**61, 2**62), st.integers(-2**61, 2**62)))
    @logged
    def utime(self, path, ns):
        def utime(p):
            os.utime(p, ns=ns)
        self.both(utime, path)

    # -- the comparison after every step -------------------------------------------------
    @invariant()
    @logged
    def trees_agree(self):
        STATS["steps"] += 1
        snaps = [snapshot(r, self.touched) for r in self.roots]
        compare(snaps)
        for key in snaps[1]:
            a, b = snaps[0][key], snaps[1][key]
            if isinstance(b, list):
                continue
            # Timestamps: the same object moved its mtime/ctime in this step on both sides or on neither.
            if self.prev is not None and a["ino"] not in self.fifo_written:
                pa, pb = self.prev[0].get(key), self.prev[1].get(key)
                if isinstance(pa, dict) and isinstance(pb, dict) and pa["ino"] == a["ino"] and pb["ino"] == b["ino"]:
                    moved_a = tuple(x != y for x, y in zip(pa["times"], a["times"]))
                    moved_b = tuple(x != y for x, y in zip(pb["times"], b["times"]))
                    assert moved_a == moved_b, f"{key}: (mtime, ctime) changed {moved_a} on the mount, " \
                                               f"{moved_b} on the reference"
        for h in self.handles:
            fs = [os.fstat(fd) for fd in h.fds]
            got = [(stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), s.st_nlink,
                    s.st_size if stat.S_ISREG(s.st_mode) else None) for s in fs]
            assert got[0] == got[1], f"fstat of open {h.path} (flags {h.flags:#o}): mount {got[0]} != " \
                                     f"reference {got[1]}"
            if stat.S_ISREG(fs[1].st_mode) and (h.flags & os.O_ACCMODE) != os.O_WRONLY and not h.direct:
                datas = [window(fd, s.st_size, self.touched) for fd, s in zip(h.fds, fs)]
                assert datas[0] == datas[1], f"content of open {h.path} differs"
        self.prev = snaps
        self.fifo_written.clear()


def window(fd: int, size: int, touched: set[int]) -> list[tuple[int, bytes]]:
    """The file's bytes: all of them, or (huge sparse files) around every offset the run touched."""
    if size <= FULL_COMPARE:
        return [(0, _pread_all(fd, size, 0))]
    spots = {0, max(0, size - WINDOW)} | {max(0, t - 64) for t in touched if t < size}
    return [(o, _pread_all(fd, min(WINDOW, size - o), o)) for o in sorted(spots)]


def snapshot(root: Path, touched: set[int]) -> dict:
    """Everything compared about a tree: listings, and per entry type, mode, owner, links, size,
    content (files) or target (symlinks), plus inode number and times for the step-to-step check."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        names = sorted(os.listdir(dirpath))
        assert len(names) == len(set(names)), f"duplicate names in {dirpath}: {names}"
        snap[("listing", rel_dir)] = names
        for name in names:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            s = os.lstat(p)
            entry = {"type": stat.S_IFMT(s.st_mode), "mode": stat.S_IMODE(s.st_mode), "nlink": s.st_nlink,
                     "uid": s.st_uid, "gid": s.st_gid, "ino": s.st_ino,
                     "times": (s.st_mtime_ns, s.st_ctime_ns)}
            if stat.S_ISREG(s.st_mode):
                entry["size"] = s.st_size
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    entry["data"] = window(fd, s.st_size, touched)
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(s.st_mode):
                entry["size"] = s.st_size
                entry["target"] = os.readlink(p)
            if not stat.S_ISLNK(s.st_mode):
                entry["xattrs"] = {n: os.getxattr(p, n) for n in sorted(os.listxattr(p))
                                   if n != "user.sessionfs.sha256"}
            snap[rel] = entry
    return snap


def compare(snaps: list[dict], what: str = "") -> None:
    """Mount snapshot against reference snapshot (times and inode numbers excluded)."""
    assert snaps[0].keys() == snaps[1].keys(), \
        f"{what}names differ: mount-only {sorted(map(str, snaps[0].keys() - snaps[1].keys()))}, " \
        f"reference-only {sorted(map(str, snaps[1].keys() - snaps[0].keys()))}"
    for key in snaps[1]:
        a, b = snaps[0][key], snaps[1][key]
        if isinstance(b, list):
            assert a == b, f"{what}listing of {key[1]}: mount {a} != reference {b}"
            continue
        for field in ("type", "mode", "nlink", "uid", "gid", "size", "target", "xattrs"):
            assert a.get(field) == b.get(field), f"{what}{key}: {field} mount {a.get(field)!r} != " \
                                                 f"reference {b.get(field)!r}"
        if "data" in b:
            for (oa, da), (ob, db) in zip(a["data"], b["data"]):
                assert (oa, da) == (ob, db), f"{what}{key}: content differs at {oa}: {_first_diff(da, db)}"


def _pread_all(fd: int, n: int, off: int) -> bytes:
    out = []
    while n > 0:
        chunk = os.pread(fd, min(n, 1 << 20), off)
        if not chunk:
            break
        out.append(chunk)
        off += len(chunk)
        n -= len(chunk)
    return b"".join(out)


def _first_diff(a: bytes, b: bytes) -> str:
    if len(a) != len(b):
        return f"lengths {len(a)} vs {len(b)}"
    i = next(i for i in range(len(a)) if a[i] != b[i])
    return f"first difference at +{i}: mount {a[i:i + 16]!r} reference {b[i:i + 16]!r}"


@on_both_stores
def test_differential_fuzz(mount, tmp_path, request):
    mount_dir = mount.sessions / "fuzz"
    mount_dir.mkdir()
    ref_dir = Path(tempfile.mkdtemp(prefix="ref-", dir=tmp_path))
    MountVsReference.mount_dir = mount_dir
    MountVsReference.ref_dir = ref_dir
    STATS.update(steps=0, examples=0)
    FINISHED.clear()
    DIVERGENCE_LOG[:] = [tmp_path / "divergences.log"]
    rss_before = proc_status_kb(mount.pid, "VmRSS")
    examples = SHARED_EXAMPLES if request.node.callspec.params["mount"] == "shared" else EXAMPLES
    try:
        run_state_machine_as_test(
            MountVsReference,
            settings=settings(max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None,
                              suppress_health_check=list(HealthCheck)))
    finally:
        if DIVERGENCE_LOG[0].exists():
            print("\ndivergences seen (first of each kind):\n" + DIVERGENCE_LOG[0].read_text()[:20000])
    peak = proc_status_kb(mount.pid, "VmHWM")
    STATS["peak_rss_kb"] = peak
    print(f"\ndifferential fuzz: {STATS['examples']} runs, {STATS['steps']} compared steps, "
          f"daemon RSS {rss_before} kB before, peak {peak} kB")
    assert peak < 400 * 1024, f"daemon peak RSS {peak} kB"
    # What was committed is what was written: a fresh daemon (and fresh kernel caches) must show
    # every run's final tree exactly as the reference has it.
    mount.remount()
    for roots, touched in FINISHED:
        compare([snapshot(r, set(touched)) for r in roots], f"after remount, {roots[0].name}: ")
