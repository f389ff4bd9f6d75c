"""POSIX details people hit, on a real mount, with ext4 as the reference.

One mount (``--allow-other``, ``default_permissions``) serves the whole module; every test
works in a fresh directory inside ``sessions/``. Permission rules are checked as real other
users: two are created with ``useradd`` for the module and removed afterwards, and snippets
run under ``setpriv`` (root bypasses DAC, so running as root would prove nothing). Where the
expected answer is "what ext4 does", the same operations also run in a directory on the local
disk and the two are compared.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from mounting import FUSE_AVAILABLE, Mount
from shared_store import STORE_KINDS, new_shared_store

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")

NAME_MAX = 255
EXT4_MAX_FILE = (1 << 44) - 4096
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
SNIPPET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _check(ret: int) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def utimensat(path, atime: tuple[int, int], mtime: tuple[int, int], flags: int = 0) -> None:
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    _check(_libc.utimensat(-100, os.fsencode(path), times, flags))


def renameat2(old, new, flags: int) -> None:
    _check(_libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags))


def err(fn, *args, **kw) -> int | None:
    """The errno ``fn`` fails with, or None when it succeeds."""
    try:
        fn(*args, **kw)
    except OSError as exc:
        return exc.errno
    return None


def touch(path, data: bytes = b"", mode: int = 0o644) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        os.write(fd, data) if data else None
    finally:
        os.close(fd)


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


# -- the module's mount, users and directories ------------------------------------------
@pytest.fixture(scope="module", params=STORE_KINDS)
def pmount(request, tmp_path_factory):
    """The module's mount: every test here runs on a local store and on a shared one."""
    # The mountpoint must be reachable by the other users (pytest's own tmp dirs are 0700).
    base = Path(tempfile.mkdtemp(prefix="sessionfs-posix-", dir="/tmp"))
    os.chmod(base, 0o755)
    with pytest.MonkeyPatch.context() as env:
        store = tmp_path_factory.mktemp("posix") / "store"
        if request.param == "shared":
            new_shared_store(request, env).init(store)
        m = Mount(store, base / "mnt", "--allow-other")
        try:
            yield m.start()
        finally:
            m.cleanup()
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def d(pmount) -> Path:
    p = pmount.sessions / f"t-{uuid.uuid4().hex[:10]}"
    p.mkdir()
    return p


@pytest.fixture
def ref(tmp_path) -> Path:
    """The same test on the local disk (ext4 on the reference machine)."""
    p = tmp_path / "ref"
    p.mkdir()
    return p


@pytest.fixture(scope="module")
def users():
    """Two unprivileged users, created for this module and removed after it."""
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("useradd/setpriv are not available")
    made = []
    try:
        for tag in ("a", "b"):
            name = f"sfsp{os.getpid() % 100000}{tag}"
            subprocess.run(["userdel", name], capture_output=True)      # a leftover of a killed run
            subprocess.run(["groupdel", name], capture_output=True)
            subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
            made.append(name)
        accounts = [pwd.getpwnam(n) for n in made]
        probe = subprocess.run(["setpriv", f"--reuid={accounts[0].pw_uid}", f"--regid={accounts[0].pw_gid}",
                                "--clear-groups", SNIPPET_PYTHON, "-c", "pass"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"{SNIPPET_PYTHON} cannot run as an unprivileged user here")
        yield accounts
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)


SNIPPET_PRELUDE = """
import errno, json, os, sys
out = {}
def R(fn, *a, **k):
    try:
        v = fn(*a, **k)
        return "ok" if v is None or isinstance(v, int) else v
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
"""


def run_as(user: pwd.struct_passwd, code: str, cwd: Path, groups: list[int] | None = None) -> dict:
    """Run a python snippet as ``user`` (setpriv); it fills ``out``, which comes back as a dict."""
    prog = SNIPPET_PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
    cmd += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    result = subprocess.run(cmd + [SNIPPET_PYTHON, "-c", prog], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- statfs and names ---------------------------------------------------------------------
def test_statfs_reports_real_numbers(pmount, d):
    s = os.statvfs(d)
    host = os.statvfs(pmount.store)
    assert s.f_namemax == NAME_MAX
    assert s.f_bsize > 0 and s.f_frsize > 0
    assert 0 < s.f_blocks and s.f_bavail <= s.f_bfree <= s.f_blocks
    assert abs(s.f_blocks * s.f_frsize - host.f_blocks * host.f_frsize) <= host.f_frsize
    assert s.f_files > 0 and s.f_ffree <= s.f_files
    assert os.pathconf(d, "PC_NAME_MAX") == NAME_MAX
    out = subprocess.run(["df", "-P", str(d)], capture_output=True, text=True, check=True).stdout
    assert int(out.splitlines()[1].split()[1]) > 0


def test_name_max_is_255_bytes(d):
    ok, long = "n" * NAME_MAX, "l" * (NAME_MAX + 1)
    touch(d / ok)
    os.mkdir(d / ("m" * NAME_MAX))
    os.symlink("x", d / ("s" * NAME_MAX))
    euro = "\u20ac" * 85                   # 255 bytes of UTF-8
    touch(d / euro)
    assert err(touch, d / (euro + "\u20ac")) == errno.ENAMETOOLONG
    for fn, args in [(touch, (d / long,)), (os.mkdir, (d / long,)), (os.symlink, ("x", d / long)),
                     (os.link, (d / ok, d / long)), (os.rename, (d / ok, d / long)),
                     (os.mknod, (d / long, stat.S_IFIFO | 0o644)), (os.stat, (d / long,)),
                     (os.unlink, (d / long,)), (os.rmdir, (d / long,)),
                     (os.open, (d / long, os.O_RDONLY))]:
        assert err(fn, *args) == errno.ENAMETOOLONG, fn.__name__
    assert sorted(os.listdir(d)) == sorted([ok, "m" * NAME_MAX, "s" * NAME_MAX, euro])


def test_names_with_every_byte(d):
    """Any byte but NUL and '/' may appear in a name."""
    bd = os.fsencode(d)
    names = [b"x" + bytes([b]) + b"y" for b in range(1, 256) if b != ord("/")]
    names.append(bytes(b for b in range(1, 256) if b != ord("/")))        # 254 bytes, all of them
    names += [b"." * 3, b"-", b" ", b"\n", b"\xff\xfe"]
    for i, n in enumerate(names):
        touch(bd + b"/" + n, n)
    assert sorted(os.listdir(bd)) == sorted(names)
    for n in names:
        with open(bd + b"/" + n, "rb") as f:
            assert f.read() == n
    for n in names[::7]:
        os.rename(bd + b"/" + n, bd + b"/" + n + b"\x01")
        assert os.path.exists(bd + b"/" + n + b"\x01")


# -- rename ------------------------------------------------------------------------------------
def test_rename_errors(d):
    os.makedirs(d / "full/sub")
    os.mkdir(d / "empty")
    os.mkdir(d / "dir")
    touch(d / "f")
    assert err(os.rename, d / "dir", d / "full") == errno.ENOTEMPTY
    assert err(os.rename, d / "f", d / "dir") == errno.EISDIR
    assert err(os.rename, d / "dir", d / "f") == errno.ENOTDIR
    assert err(os.rename, d / "full", d / "full/sub/inner") == errno.EINVAL
    assert err(os.rename, d / "full", d / "full/sub") == errno.EINVAL
    assert err(os.rename, d / "missing", d / "x") == errno.ENOENT
    assert err(os.rename, d / "f", d / "missing/x") == errno.ENOENT
    assert err(os.rename, d / "f", d / "f/x") == errno.ENOTDIR
    assert err(os.rename, f"{d}/full/.", f"{d}/y") in (errno.EBUSY, errno.EINVAL)    # (pathlib drops "/.")
    assert err(os.rmdir, d / "full") == errno.ENOTEMPTY
    # a directory replaces an empty one; link counts follow
    nlink = os.stat(d).st_nlink
    os.rename(d / "dir", d / "empty")
    assert not os.path.exists(d / "dir") and os.path.isdir(d / "empty")
    assert os.stat(d).st_nlink == nlink - 1
    # renaming onto itself or onto another link of the same file does nothing
    os.rename(d / "f", d / "f")
    os.link(d / "f", d / "g")
    os.rename(d / "f", d / "g")
    assert os.path.exists(d / "f") and os.path.exists(d / "g") and os.stat(d / "g").st_nlink == 2


def test_rename_over_open_file_is_atomic(pmount, d):
    touch(d / "target", b"old contents")
    touch(d / "tmp", b"new contents")
    old_ino = os.stat(d / "target").st_ino
    fd = os.open(d / "target", os.O_RDONLY)
    files_before = pmount.stats()["files"]
    try:
        os.rename(d / "tmp", d / "target")
        assert (d / "target").read_bytes() == b"new contents"
        assert not (d / "tmp").exists()
        assert os.pread(fd, 100, 0) == b"old contents"      # the replaced inode lives on
        assert os.fstat(fd).st_ino == old_ino and os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    # with the last user gone, the replaced inode and its chunk references are released
    _wait_for(lambda: pmount.stats()["files"] == files_before - 1, "replaced inode released")


def _wait_for(cond, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.05)


def test_renameat2_noreplace_and_exchange(d):
    touch(d / "a", b"A")
    touch(d / "b", b"B")
    os.makedirs(d / "dir/inner")
    os.mkdir(d / "other")
    assert err(renameat2, d / "a", d / "b", RENAME_NOREPLACE) == errno.EEXIST
    renameat2(d / "a", d / "c", RENAME_NOREPLACE)
    assert (d / "c").read_bytes() == b"A" and not (d / "a").exists()
    renameat2(d / "c", d / "b", RENAME_EXCHANGE)
    assert (d / "c").read_bytes() == b"B" and (d / "b").read_bytes() == b"A"
    assert err(renameat2, d / "c", d / "missing", RENAME_EXCHANGE) == errno.ENOENT
    assert err(renameat2, d / "c", d / "b", RENAME_EXCHANGE | RENAME_NOREPLACE) == errno.EINVAL
    # a file and a directory in different parents trade places; link counts follow
    n_d, n_other = os.stat(d).st_nlink, os.stat(d / "other").st_nlink
    touch(d / "other/f", b"F")
    renameat2(d / "dir", d / "other/f", RENAME_EXCHANGE)
    assert (d / "dir").read_bytes() == b"F" and os.path.isdir(d / "other/f/inner")
    assert os.stat(d).st_nlink == n_d - 1 and os.stat(d / "other").st_nlink == n_other + 1
    assert err(renameat2, d / "other", d / "other/f/inner", RENAME_EXCHANGE) == errno.EINVAL


# -- link counts and hard links ----------------------------------------------------------------
def test_directory_link_counts(d):
    assert os.stat(d).st_nlink == 2
    os.makedirs(d / "a/x")
    os.mkdir(d / "a/y")
    os.mkdir(d / "b")
    touch(d / "a/file")
    assert os.stat(d).st_nlink == 4
    assert os.stat(d / "a").st_nlink == 4
    os.rmdir(d / "a/y")
    assert os.stat(d / "a").st_nlink == 3
    os.rename(d / "a/x", d / "b/x")
    assert os.stat(d / "a").st_nlink == 2 and os.stat(d / "b").st_nlink == 3
    os.rename(d / "b/x", d / "x")
    assert os.stat(d / "b").st_nlink == 2 and os.stat(d).st_nlink == 5
    os.mkdir(d / "b/empty")
    os.rename(d / "x", d / "b/empty")           # over an empty directory
    assert os.stat(d).st_nlink == 4 and os.stat(d / "b").st_nlink == 3
    fd = os.open(d / "b/empty", os.O_RDONLY | os.O_DIRECTORY)
    os.rmdir(d / "b/empty")
    assert os.fstat(fd).st_nlink in (0, 1) and os.listdir(f"/proc/self/fd/{fd}") == []
    assert err(os.open, f"/proc/self/fd/{fd}/new", os.O_CREAT | os.O_WRONLY) == errno.ENOENT
    os.close(fd)
    assert os.stat(d / "b").st_nlink == 2


def test_hard_links(d):
    touch(d / "a", b"shared")
    os.mkdir(d / "sub")
    ctime = os.stat(d / "a").st_ctime_ns
    time.sleep(0.01)
    os.link(d / "a", d / "sub/b")
    sa, sb = os.stat(d / "a"), os.stat(d / "sub/b")
    assert sa.st_ino == sb.st_ino and sa.st_nlink == sb.st_nlink == 2
    assert sa.st_ctime_ns > ctime
    with open(d / "sub/b", "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(b" and more")
    assert (d / "a").read_bytes() == b"shared and more"
    fd = os.open(d / "a", os.O_RDONLY)
    os.unlink(d / "a")
    assert os.stat(d / "sub/b").st_nlink == 1 and os.fstat(fd).st_nlink == 1
    assert (d / "sub/b").read_bytes() == b"shared and more"
    os.close(fd)
    assert err(os.link, d / "sub", d / "dirlink") == errno.EPERM
    assert err(os.link, d / "missing", d / "x") == errno.ENOENT
    assert err(os.link, d / "sub/b", d / "sub/b") == errno.EEXIST
    os.symlink("sub/b", d / "sym")
    os.link(d / "sym", d / "symlink2", follow_symlinks=False)
    assert os.path.islink(d / "symlink2") and os.lstat(d / "sym").st_nlink == 2


def test_unlinked_open_file_lives_until_closed(pmount, d):
    data = os.urandom(300_000)
    touch(d / "f", data)
    files_before = pmount.stats()["files"]
    fd = os.open(d / "f", os.O_RDWR)
    try:
        os.unlink(d / "f")
        assert not (d / "f").exists() and os.listdir(d) == []
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, len(data), 0) == data
        assert os.pwrite(fd, b"still writable", 100) == 14
        os.fsync(fd)
        assert os.pread(fd, 14, 100) == b"still writable"
        assert os.fstat(fd).st_size == len(data)
        assert pmount.stats()["files"] == files_before
    finally:
        os.close(fd)
    _wait_for(lambda: pmount.stats()["files"] == files_before - 1, "unlinked inode released")


# -- permissions as other users ---------------------------------------------------------------
def test_sticky_directory_and_ownership(d, users):
    a, b = users
    os.chmod(d, 0o1777)
    out = run_as(a, """
        out["create"] = R(lambda: os.close(os.open("a_file", os.O_CREAT | os.O_WRONLY, 0o644)))
        out["mkdir"] = R(os.mkdir, "a_dir")
        out["chmod_parent"] = R(os.chmod, ".", 0o777)
        out["chown_own_to_other"] = R(os.chown, "a_file", 0, -1)
        out["chgrp_not_member"] = R(os.chown, "a_file", -1, 0)
        out["chmod_own"] = R(os.chmod, "a_file", 0o640)
    """, d)
    assert out == {"create": "ok", "mkdir": "ok", "chmod_parent": "EPERM", "chown_own_to_other": "EPERM",
                   "chgrp_not_member": "EPERM", "chmod_own": "ok"}
    assert os.stat(d / "a_file").st_uid == a.pw_uid and os.stat(d / "a_file").st_gid == a.pw_gid
    out = run_as(b, """
        out["unlink"] = R(os.unlink, "a_file")
        out["rename"] = R(os.rename, "a_file", "mine")
        out["rmdir"] = R(os.rmdir, "a_dir")
        out["read"] = R(lambda: open("a_file", "rb").read().decode())
        out["write"] = R(os.open, "a_file", os.O_WRONLY)
        out["chmod"] = R(os.chmod, "a_file", 0o777)
        out["utime_set"] = R(os.utime, "a_file", (1, 1))
        out["utime_now"] = R(os.utime, "a_file")
        out["create_own"] = R(lambda: os.close(os.open("b_file", os.O_CREAT | os.O_WRONLY, 0o600)))
        out["rename_own_over_a"] = R(os.rename, "b_file", "a_file")
        out["unlink_own"] = R(os.unlink, "b_file")
    """, d)
    assert out == {"unlink": "EPERM", "rename": "EPERM", "rmdir": "EPERM", "read": "EACCES", "write": "EACCES",
                   "chmod": "EPERM", "utime_set": "EPERM", "utime_now": "EACCES", "create_own": "ok",
                   "rename_own_over_a": "EPERM", "unlink_own": "ok"}
    out = run_as(a, """
        out["unlink"] = R(os.unlink, "a_file")
        out["rmdir"] = R(os.rmdir, "a_dir")
    """, d)
    assert out == {"unlink": "ok", "rmdir": "ok"}
    # without the sticky bit, write permission on the directory is enough
    os.chmod(d, 0o777)
    touch(d / "root_file")
    out = run_as(b, """
        out["unlink"] = R(os.unlink, "root_file")
    """, d)
    assert out == {"unlink": "ok"}


def test_mode_bits_decide_for_other_users(d, users):
    a, _ = users
    os.mkdir(d / "noexec", 0o666)
    os.mkdir(d / "nowrite", 0o555)
    touch(d / "nowrite/f", b"data", 0o644)
    touch(d / "secret", b"x", 0o600)
    touch(d / "script", b"#!/bin/sh\necho hi\n", 0o755)
    out = run_as(a, """
        out["lookup_noexec"] = R(os.stat, "noexec/x")
        out["list_noexec"] = R(lambda: os.listdir("noexec"))
        out["create_nowrite"] = R(os.open, "nowrite/g", os.O_CREAT | os.O_WRONLY, 0o644)
        out["unlink_nowrite"] = R(os.unlink, "nowrite/f")
        out["read_nowrite"] = R(lambda: open("nowrite/f", "rb").read().decode())
        out["read_secret"] = R(os.open, "secret", os.O_RDONLY)
        out["trunc_secret"] = R(os.truncate, "secret", 0)
        out["access_x"] = os.access("script", os.X_OK)
        out["access_w"] = os.access("script", os.W_OK)
    """, d)
    assert out == {"lookup_noexec": "EACCES", "list_noexec": [], "create_nowrite": "EACCES",
                   "unlink_nowrite": "EACCES", "read_nowrite": "data", "read_secret": "EACCES",
                   "trunc_secret": "EACCES", "access_x": True, "access_w": False}


def test_writing_clears_setuid_and_setgid(d, users):
    a, _ = users
    for mode in (0o4777, 0o2777, 0o6777):
        touch(d / "f")
        os.chmod(d / "f", mode)
        out = run_as(a, """
            fd = os.open("f", os.O_WRONLY)
            os.write(fd, b"x")
            out["mode"] = os.fstat(fd).st_mode & 0o7777
        """, d)
        assert out["mode"] == 0o777 and stat.S_IMODE(os.stat(d / "f").st_mode) == 0o777, oct(mode)
        os.unlink(d / "f")


def test_setgid_directory_inheritance(d, users):
    a, _ = users
    os.mkdir(d / "g")
    os.chown(d / "g", 0, 4242)
    os.chmod(d / "g", 0o2777)
    touch(d / "g/file")
    os.mkdir(d / "g/dir", 0o755)
    os.mkfifo(d / "g/fifo")
    os.symlink("file", d / "g/link")
    for n in ("file", "dir", "fifo", "link"):
        assert os.lstat(d / "g" / n).st_gid == 4242, n
    assert os.stat(d / "g/dir").st_mode & stat.S_ISGID
    assert not os.stat(d / "g/file").st_mode & stat.S_ISGID
    out = run_as(a, """
        os.close(os.open("g/by_a", os.O_CREAT | os.O_WRONLY, 0o2755))
        os.mkdir("g/dir_a")
        st = os.stat("g/by_a"); sd = os.stat("g/dir_a")
        out["file"] = [st.st_uid, st.st_gid, st.st_mode & 0o7777]
        out["dir"] = [sd.st_gid, bool(sd.st_mode & 0o2000)]
    """, d)
    # a non-member's file takes the directory's group, but not its set-gid bit (ext4 does the same)
    assert out == {"file": [a.pw_uid, 4242, 0o755], "dir": [4242, True]}


# -- attributes ------------------------------------------------------------------------------------
def test_chmod_chown(d):
    touch(d / "f")
    os.mkdir(d / "dir")
    for mode in (0o7777, 0o4755, 0o2755, 0o1755, 0o000, 0o644):
        os.chmod(d / "f", mode)
        assert stat.S_IMODE(os.stat(d / "f").st_mode) == mode
    os.chmod(d / "dir", 0o1777)
    assert stat.S_IMODE(os.stat(d / "dir").st_mode) == 0o1777
    c0 = os.stat(d / "f").st_ctime_ns
    time.sleep(0.01)
    os.chown(d / "f", 65534, 65533)
    s = os.stat(d / "f")
    assert (s.st_uid, s.st_gid) == (65534, 65533) and s.st_ctime_ns > c0
    os.chmod(d / "f", 0o6755)
    os.chown(d / "f", 12, 13)                        # chown drops set-uid/set-gid of an executable
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o755
    c1 = os.stat(d / "f").st_ctime_ns
    time.sleep(0.01)
    os.chown(d / "f", -1, -1)                         # nothing changes but ctime (as on ext4)
    s = os.stat(d / "f")
    assert (s.st_uid, s.st_gid) == (12, 13) and s.st_ctime_ns > c1
    os.symlink("f", d / "link")
    os.chmod(d / "link", 0o600)                       # chmod follows the link
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o600
    os.chown(d / "link", 7, 8, follow_symlinks=False)
    assert (os.lstat(d / "link").st_uid, os.stat(d / "f").st_uid) == (7, 12)


def test_utimens_now_and_omit(d):
    touch(d / "f", b"abc")
    os.utime(d / "f", ns=(1_900_000_000_123_456_789, 1_950_000_000_987_654_321))
    s = os.stat(d / "f")
    assert (s.st_atime_ns, s.st_mtime_ns) == (1_900_000_000_123_456_789, 1_950_000_000_987_654_321)
    utimensat(d / "f", (100_000_000, 5), (0, UTIME_OMIT))
    s = os.stat(d / "f")
    assert (s.st_atime_ns, s.st_mtime_ns) == (100_000_000_000_000_005, 1_950_000_000_987_654_321)
    utimensat(d / "f", (0, UTIME_OMIT), (2**32, 0))                  # y2106
    s = os.stat(d / "f")
    assert (s.st_atime_ns, s.st_mtime_ns) == (100_000_000_000_000_005, 2**32 * 10**9)
    c0 = s.st_ctime_ns
    utimensat(d / "f", (0, UTIME_OMIT), (0, UTIME_OMIT))              # nothing at all
    assert os.stat(d / "f").st_mtime_ns == 2**32 * 10**9
    before = time.time_ns()
    time.sleep(0.01)
    utimensat(d / "f", (0, UTIME_NOW), (0, UTIME_OMIT))
    s = os.stat(d / "f")
    assert s.st_atime_ns >= before - 20_000_000 and s.st_mtime_ns == 2**32 * 10**9 and s.st_ctime_ns > c0
    os.utime(d / "f")                                                 # both UTIME_NOW
    s = os.stat(d / "f")
    assert abs(s.st_mtime_ns - time.time_ns()) < 2 * 10**9
    os.utime(d / "f", ns=(-10**12, -5 * 10**9 + 1))                   # before 1970
    s = os.stat(d / "f")
    assert (s.st_atime_ns, s.st_mtime_ns) == (-10**12, -5 * 10**9 + 1)
    os.utime(d / "f", (2**35, 2**35))                                  # far future: clamped, never EIO
    assert os.stat(d / "f").st_mtime > 9 * 10**9
    os.symlink("f", d / "link")
    utimensat(d / "link", (1_960_000_000, 0), (1_970_000_000, 0), AT_SYMLINK_NOFOLLOW)
    assert os.lstat(d / "link").st_mtime == 1_970_000_000 and os.stat(d / "f").st_mtime != 1_970_000_000
    for name in ("dir", "fifo"):
        (os.mkdir if name == "dir" else os.mkfifo)(d / name)
        os.utime(d / name, ns=(1_900_000_000 * 10**9, 1_950_000_000 * 10**9))
        assert os.stat(d / name).st_mtime == 1_950_000_000


def test_xattrs(d):
    data = os.urandom(200_000)
    touch(d / "f", data)
    os.setxattr(d / "f", "user.color", b"blue")
    os.setxattr(d / "f", "user.empty", b"")
    assert os.getxattr(d / "f", "user.color") == b"blue"
    assert os.getxattr(d / "f", "user.empty") == b""
    names = set(os.listxattr(d / "f"))
    assert {"user.color", "user.empty"} <= names
    assert err(os.getxattr, d / "f", "user.missing") == errno.ENODATA
    assert err(os.removexattr, d / "f", "user.missing") == errno.ENODATA
    assert err(os.setxattr, d / "f", "user.color", b"red", os.XATTR_CREATE) == errno.EEXIST
    assert err(os.setxattr, d / "f", "user.new", b"x", os.XATTR_REPLACE) == errno.ENODATA
    os.setxattr(d / "f", "user.color", b"red", os.XATTR_REPLACE)
    assert os.getxattr(d / "f", "user.color") == b"red"
    os.removexattr(d / "f", "user.color")
    assert "user.color" not in os.listxattr(d / "f")
    assert os.getxattr(d / "f", "user.sessionfs.sha256").decode() == hashlib.sha256(data).hexdigest()
    with open(d / "f", "r+b") as f:                  # the identity follows the content, even unflushed
        f.write(b"changed")
        f.flush()
        changed = b"changed" + data[7:]
        assert os.getxattr(d / "f", "user.sessionfs.sha256").decode() == hashlib.sha256(changed).hexdigest()
    assert err(os.setxattr, d / "f", "user.sessionfs.sha256", b"0" * 64) == errno.EPERM
    assert err(os.setxattr, d / "f", "bogus.name", b"x") == errno.EOPNOTSUPP
    os.mkdir(d / "dir")
    os.setxattr(d / "dir", "user.k", b"v")
    assert os.listxattr(d / "dir") == ["user.k"]
    os.symlink("f", d / "link")
    assert err(os.setxattr, d / "link", "user.k", b"v", follow_symlinks=False) == errno.EPERM


def test_setting_an_xattr_to_its_value_changes_nothing(d):
    """As on ext4: ctime moves when an attribute's value changes, not when it is set again to
    the value it has (found by the differential fuzzer)."""
    os.mkdir(d / "dir")
    touch(d / "f", b"x")
    for path in (d / "dir", d / "f"):
        os.setxattr(path, "user.a", b"")
        before = os.stat(path).st_ctime_ns
        time.sleep(0.01)
        os.setxattr(path, "user.a", b"")
        os.setxattr(path, "user.a", b"", os.XATTR_REPLACE)
        assert os.stat(path).st_ctime_ns == before
        os.setxattr(path, "user.a", b"new")
        assert os.stat(path).st_ctime_ns > before


# -- open flags, truncate, sizes -----------------------------------------------------------------
def test_open_flags(d):
    touch(d / "f", b"hello world")
    assert err(os.open, d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    assert err(os.open, d / "f", os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_WRONLY, 0o644) == errno.EEXIST
    assert (d / "f").read_bytes() == b"hello world"
    os.symlink("nowhere", d / "dangling")
    assert err(os.open, d / "dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    assert err(os.open, d / "f", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    os.symlink("f", d / "link")
    assert err(os.open, d / "link", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    os.mkdir(d / "dir")
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_CREAT | os.O_WRONLY):
        assert err(os.open, d / "dir", flags, 0o644) == errno.EISDIR
    m0 = os.stat(d / "f").st_mtime_ns
    time.sleep(0.01)
    os.close(os.open(d / "f", os.O_WRONLY | os.O_TRUNC))
    s = os.stat(d / "f")
    assert s.st_size == 0 and (d / "f").read_bytes() == b"" and s.st_mtime_ns > m0
    touch(d / "f", b"0123456789")
    os.close(os.open(d / "f", os.O_RDONLY | os.O_TRUNC))               # Linux truncates here too
    assert os.stat(d / "f").st_size == 0
    touch(d / "f", b"abcdefgh")
    with open(d / "f", "wb") as f:                                      # "w" = O_TRUNC: no stale tail
        f.write(b"xy")
    assert (d / "f").read_bytes() == b"xy"
    # the mode of a new file is mode & ~umask, whatever the access mode
    old = os.umask(0o027)
    try:
        os.close(os.open(d / "new", os.O_CREAT | os.O_RDWR, 0o777))
        os.mkdir(d / "newdir", 0o777)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(d / "new").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(d / "newdir").st_mode) == 0o750


def test_o_append_from_two_descriptors(d):
    touch(d / "log")
    a = os.open(d / "log", os.O_WRONLY | os.O_APPEND)
    b = os.open(d / "log", os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(50):
            os.write(a if i % 2 == 0 else b, f"line {i:02d}\n".encode())
        os.pwrite(a, b"PWRITE\n", 0)                 # Linux: O_APPEND wins over the offset
    finally:
        os.close(a)
        os.close(b)
    lines = (d / "log").read_bytes().decode().splitlines()
    assert lines == [f"line {i:02d}" for i in range(50)] + ["PWRITE"]


def test_truncate_up_and_down(d):
    touch(d / "f", b"x" * 10_000)
    os.truncate(d / "f", 50_000)
    data = (d / "f").read_bytes()
    assert data == b"x" * 10_000 + bytes(40_000)
    os.truncate(d / "f", 3)
    assert (d / "f").read_bytes() == b"xxx"
    with open(d / "f", "r+b") as f:
        f.truncate(8)
        f.seek(0, os.SEEK_END)
        f.write(b"end")
    assert (d / "f").read_bytes() == b"xxx" + bytes(5) + b"end"
    m0 = os.stat(d / "f").st_mtime_ns
    time.sleep(0.01)
    os.truncate(d / "f", 11)                          # same size: times still move (ext4 does)
    assert os.stat(d / "f").st_mtime_ns > m0
    fd = os.open(d / "f", os.O_RDONLY)
    assert err(os.ftruncate, fd, 0) == errno.EINVAL
    os.close(fd)
    assert err(os.truncate, d / "f", -1) == errno.EINVAL
    os.mkdir(d / "dir")
    assert err(os.truncate, d / "dir", 0) == errno.EISDIR
    assert err(os.truncate, d / "f", EXT4_MAX_FILE + 1) == errno.EFBIG
    os.truncate(d / "f", EXT4_MAX_FILE)
    assert os.stat(d / "f").st_size == EXT4_MAX_FILE
    os.truncate(d / "f", 0)


def test_sparse_write_at_a_huge_offset(pmount, d):
    pid = pmount.pid
    before = rss_kb(pid)
    off = 2**40
    fd = os.open(d / "sparse", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.pwrite(fd, b"far away", off) == 8
        assert os.fstat(fd).st_size == off + 8
        assert os.pread(fd, 16, off - 8) == bytes(8) + b"far away"
        assert os.pread(fd, 4096, 12345) == bytes(4096)
        os.fsync(fd)
        assert os.pwrite(fd, b"x", 2**42) == 1
        os.ftruncate(fd, 2**43)
        os.fsync(fd)
        assert err(os.pwrite, fd, b"x", EXT4_MAX_FILE) == errno.EFBIG
        assert os.pwrite(fd, b"12345", EXT4_MAX_FILE - 2) == 2          # short write up to the limit
        assert err(os.ftruncate, fd, EXT4_MAX_FILE + 1) == errno.EFBIG
    finally:
        os.close(fd)
    s = os.stat(d / "sparse")
    assert s.st_size == EXT4_MAX_FILE
    assert s.st_blocks < 1000, f"st_blocks {s.st_blocks}: a sparse file must not count its holes"
    with open(d / "sparse", "rb") as f:
        f.seek(off)
        assert f.read(8) == b"far away"
        f.seek(EXT4_MAX_FILE - 2)
        assert f.read() == b"12"
    after = rss_kb(pid)
    assert after - before < 64 * 1024, f"daemon RSS grew from {before} kB to {after} kB"


def test_write_read_patterns(d):
    """Many small writes at odd offsets, overwrites and reads across boundaries."""
    ref = bytearray()
    fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        import random
        rnd = random.Random(7)
        for _ in range(400):
            off = rnd.randrange(0, 300_000)
            data = rnd.randbytes(rnd.randrange(1, 900))
            os.pwrite(fd, data, off)
            if len(ref) < off:
                ref.extend(bytes(off - len(ref)))
            ref[off:off + len(data)] = data
        assert os.pread(fd, len(ref) + 10, 0) == bytes(ref)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert (d / "f").read_bytes() == bytes(ref)


# -- special files and symlinks ------------------------------------------------------------------
def test_fifo_devices_sockets(d):
    os.mkfifo(d / "fifo", 0o640)
    assert stat.S_ISFIFO(os.stat(d / "fifo").st_mode) and stat.S_IMODE(os.stat(d / "fifo").st_mode) == 0o640
    r = os.open(d / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(d / "fifo", os.O_WRONLY)
    os.write(w, b"through the pipe")
    assert os.read(r, 100) == b"through the pipe"
    os.close(w)
    os.close(r)
    os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    s = os.stat(d / "null")
    assert stat.S_ISCHR(s.st_mode) and (os.major(s.st_rdev), os.minor(s.st_rdev)) == (1, 3)
    os.mknod(d / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 9))
    assert stat.S_ISBLK(os.stat(d / "blk").st_mode) and os.minor(os.stat(d / "blk").st_rdev) == 9
    os.mknod(d / "plain", stat.S_IFREG | 0o600)
    assert stat.S_ISREG(os.stat(d / "plain").st_mode)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(d / "sock"))
        assert stat.S_ISSOCK(os.stat(d / "sock").st_mode)
    finally:
        sock.close()
    assert err(os.mkfifo, d / "fifo") == errno.EEXIST


def test_symlinks(d):
    os.symlink("target/of/link", d / "l")
    assert os.readlink(d / "l") == "target/of/link"
    assert os.lstat(d / "l").st_size == len("target/of/link")
    assert stat.S_IMODE(os.lstat(d / "l").st_mode) == 0o777
    long = "t" * 4095
    os.symlink(long, d / "long")
    assert os.readlink(d / "long") == long and os.lstat(d / "long").st_size == 4095
    assert err(os.symlink, "t" * 4096, d / "toolong") == errno.ENAMETOOLONG
    touch(d / "f")
    assert err(os.readlink, d / "f") == errno.EINVAL
    assert err(os.symlink, "x", d / "f") == errno.EEXIST
    os.symlink("loop2", d / "loop1")
    os.symlink("loop1", d / "loop2")
    assert err(os.stat, d / "loop1") == errno.ELOOP
    os.mkdir(d / "sub")
    os.symlink("../f", d / "sub/up")
    with open(d / "sub/up", "wb") as f:
        f.write(b"via link")
    assert (d / "f").read_bytes() == b"via link"
    os.symlink("../sub", d / "sub/self")
    assert os.listdir(d / "sub/self/self/self") == sorted(os.listdir(d / "sub")) or \
        sorted(os.listdir(d / "sub/self/self/self")) == sorted(os.listdir(d / "sub"))
    os.unlink(d / "l")
    assert not os.path.lexists(d / "l")


# -- directories ----------------------------------------------------------------------------------------
class _Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]


def _readdir_with_offsets(path, seek_to=None, limit=None):
    """(name, telldir) pairs via libc opendir/readdir/telldir, optionally from a seekdir offset."""
    _libc.opendir.restype = ctypes.c_void_p
    _libc.readdir.restype = ctypes.POINTER(_Dirent)
    _libc.readdir.argtypes = [ctypes.c_void_p]
    _libc.telldir.restype = ctypes.c_long
    _libc.telldir.argtypes = [ctypes.c_void_p]
    _libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    _libc.closedir.argtypes = [ctypes.c_void_p]
    dirp = _libc.opendir(os.fsencode(path))
    assert dirp, "opendir failed"
    out = []
    try:
        if seek_to is not None:
            _libc.seekdir(dirp, seek_to)
        while limit is None or len(out) < limit:
            ent = _libc.readdir(dirp)
            if not ent:
                break
            out.append((ent.contents.d_name, _libc.telldir(dirp)))
    finally:
        _libc.closedir(dirp)
    return out


def test_readdir_of_thousands_of_entries(d, request):
    """10,000 entries (2,000 on a shared store: each create is a PostgreSQL commit, and 2,000
    already fill many readdir pages)."""
    count = 2_000 if request.node.callspec.params["pmount"] == "shared" else 10_000
    names = [f"entry-{i:05d}-{'x' * (i % 37)}" for i in range(count)]
    for n in names:
        os.mknod(d / n, stat.S_IFREG | 0o644)
    first = [e.name for e in os.scandir(d)]
    second = [e.name for e in os.scandir(d)]
    assert len(first) == count and sorted(first) == sorted(names)
    assert first == second, "two listings of an unchanged directory must come in the same order"
    # telldir/seekdir offsets are stable: resuming from the middle gives the same tail
    full = _readdir_with_offsets(d)
    assert [n.decode() for n, _ in full if n not in (b".", b"..")] == first
    middle = len(full) // 2
    tail = _readdir_with_offsets(d, seek_to=full[middle][1], limit=500)
    assert [n for n, _ in tail] == [n for n, _ in full[middle + 1:middle + 501]]
    out = subprocess.run(["ls", "-f", str(d)], capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(n for n in out if n and n not in (".", "..")) == sorted(names)


def test_removing_entries_while_listing(d):
    """rm -rf's pattern: unlink each entry as it is read; every entry is seen exactly once."""
    for i in range(600):
        os.mknod(d / f"f{i}", stat.S_IFREG | 0o644)
    seen = []
    with os.scandir(d) as it:
        for e in it:
            seen.append(e.name)
            os.unlink(e.path)
    assert sorted(seen) == sorted(f"f{i}" for i in range(600))
    assert os.listdir(d) == []
    os.rmdir(d)


# -- errors a POSIX test suite checks (pjdfstest style) ------------------------------------------------
def test_pjdfstest_style_errors(d):
    touch(d / "f")
    os.mkdir(d / "dir")
    os.mkdir(d / "dir/sub")
    assert err(os.rmdir, f"{d}/dir/sub/.") == errno.EINVAL
    assert err(os.rmdir, f"{d}/dir/sub/..") == errno.ENOTEMPTY
    assert err(os.unlink, d / "dir") == errno.EISDIR
    assert err(os.rmdir, d / "f") == errno.ENOTDIR
    assert err(os.rmdir, d / "dir") == errno.ENOTEMPTY
    assert err(os.mkdir, d / "f") == errno.EEXIST
    assert err(os.mkdir, d / "dir") == errno.EEXIST
    assert err(os.mkdir, d / "f/x") == errno.ENOTDIR
    assert err(os.stat, d / "f/x") == errno.ENOTDIR
    assert err(os.open, f"{d}/f/", os.O_RDONLY) == errno.ENOTDIR
    assert err(os.unlink, d / "missing") == errno.ENOENT
    assert err(os.rmdir, d / "missing") == errno.ENOENT
    assert err(os.chmod, d / "missing", 0o644) == errno.ENOENT
    assert err(os.link, d / "dir", d / "dirlink") == errno.EPERM
    assert err(os.mknod, d / "dir2", stat.S_IFDIR | 0o755) in (errno.EPERM, errno.EINVAL)
    assert err(os.rename, d / "f", "/tmp/sessionfs-posix-cross-device") == errno.EXDEV
    assert err(os.link, d / "f", "/tmp/sessionfs-posix-cross-device") == errno.EXDEV
    # modes: the bits asked for minus the umask; mkdir keeps the sticky bit but not set-uid/gid
    umask = os.umask(0)
    os.umask(umask)
    os.mkdir(d / "m", 0o7777)
    assert stat.S_IMODE(os.stat(d / "m").st_mode) == 0o1777 & ~umask
    fd = os.open(d / "zero", os.O_CREAT | os.O_RDWR, 0)             # mode 0, still writable through fd
    os.write(fd, b"data")
    os.ftruncate(fd, 2)
    os.close(fd)
    assert stat.S_IMODE(os.stat(d / "zero").st_mode) == 0 and os.stat(d / "zero").st_size == 2


def test_times_move_like_ext4(d, ref):
    """mtime/ctime of files and their directories change for exactly the operations ext4 changes them for."""
    results = []
    for root in (d, ref):
        results.append(_time_script(root))
    assert results[0] == results[1]


def _time_script(root: Path) -> list:
    os.chdir(root)
    out = []

    def snap(paths):
        return {p: (os.lstat(p).st_mtime_ns, os.lstat(p).st_ctime_ns) if os.path.lexists(p) else None
                for p in paths}

    def step(tag, paths, fn):
        before = snap(paths)
        time.sleep(0.005)
        try:
            fn()
            res = "ok"
        except OSError as exc:
            res = errno.errorcode[exc.errno]
        after = snap(paths)
        moved = {p: None if before[p] is None or after[p] is None else
                 ("M" if after[p][0] != before[p][0] else "-") + ("C" if after[p][1] != before[p][1] else "-")
                 for p in paths}
        out.append((tag, res, moved))

    def write(path, data, flags=os.O_WRONLY, off=None):
        fd = os.open(path, flags)
        try:
            os.pwrite(fd, data, off) if off is not None else os.write(fd, data)
        finally:
            os.close(fd)

    try:
        os.mkdir("d")
        os.mkdir("e")
        step("create", [".", "d"], lambda: os.close(os.open("d/f", os.O_CREAT | os.O_WRONLY, 0o644)))
        step("open existing O_CREAT", ["d", "d/f"], lambda: os.close(os.open("d/f", os.O_CREAT | os.O_RDONLY)))
        step("write", ["d", "d/f"], lambda: write("d/f", b"abc"))
        step("overwrite same bytes", ["d/f"], lambda: write("d/f", b"abc", off=0))
        step("O_TRUNC", ["d/f"], lambda: os.close(os.open("d/f", os.O_WRONLY | os.O_TRUNC)))
        step("O_TRUNC empty", ["d/f"], lambda: os.close(os.open("d/f", os.O_WRONLY | os.O_TRUNC)))
        step("truncate up", ["d/f"], lambda: os.truncate("d/f", 100))
        step("truncate same", ["d/f"], lambda: os.truncate("d/f", 100))
        step("truncate down", ["d/f"], lambda: os.truncate("d/f", 10))
        step("read", ["d/f"], lambda: open("d/f", "rb").read())
        step("chmod", ["d", "d/f"], lambda: os.chmod("d/f", 0o600))
        step("chown", ["d/f"], lambda: os.chown("d/f", 1, 1))
        step("chown -1 -1", ["d/f"], lambda: os.chown("d/f", -1, -1))
        step("utime", ["d/f"], lambda: os.utime("d/f", ns=(10**18, 10**18)))
        step("setxattr", ["d/f"], lambda: os.setxattr("d/f", "user.x", b"1"))
        step("removexattr", ["d/f"], lambda: os.removexattr("d/f", "user.x"))
        step("link", ["d", "e", "d/f"], lambda: os.link("d/f", "e/g"))
        step("failed link", ["d", "e", "d/f"], lambda: os.link("d/f", "e/g"))
        step("rename across dirs", ["d", "e", "d/f"], lambda: os.rename("d/f", "e/f2"))
        step("rename in dir", ["e", "e/f2"], lambda: os.rename("e/f2", "e/f3"))
        step("rename over file", ["e", "e/f3", "e/g"], lambda: os.rename("e/f3", "e/g"))
        step("rename onto itself", ["e", "e/g"], lambda: os.rename("e/g", "e/g"))
        os.link("e/g", "e/h")
        step("rename onto own link", ["e", "e/g", "e/h"], lambda: os.rename("e/g", "e/h"))
        step("unlink one link", ["e", "e/g", "e/h"], lambda: os.unlink("e/g"))
        step("mkdir", [".", "d"], lambda: os.mkdir("d/sub"))
        step("rename dir across", [".", "d", "e", "d/sub"], lambda: os.rename("d/sub", "e/sub"))
        os.mkdir("d/empty")
        step("rename dir over empty", ["d", "e", "e/sub", "d/empty"], lambda: os.rename("e/sub", "d/empty"))
        step("rmdir", [".", "d"], lambda: os.rmdir("d/empty"))
        step("symlink", ["d"], lambda: os.symlink("x", "d/sl"))
        step("mkfifo", ["d"], lambda: os.mkfifo("d/ff"))
        step("failed unlink", ["d"], lambda: os.unlink("d/nonexistent"))
        step("failed rename", ["d", "e/h"], lambda: os.rename("e/h", "d/nonexistent/x"))
        step("chmod dir", [".", "d"], lambda: os.chmod("d", 0o700))
        step("listdir", ["d"], lambda: os.listdir("d"))
    finally:
        os.chdir("/")
    return out
