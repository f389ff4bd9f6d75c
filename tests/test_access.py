"""Access control and containment.

- Without ``--allow-other`` another local user cannot enter the mount; with it, the
  permission bits decide (``default_permissions``).
- Session ids and paths cannot leave the store: ``..``, absolute paths, NUL, overlong
  names give clear errors through the API and the CLI.
- The store directory is private (0700); symlinks planted inside it are not followed.
- A block claiming gigabytes (decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mounting import FUSE_AVAILABLE, Mount, sessionfs
from checks import pack_files
from store import BadInputError, FormatError, IntegrityError, Store
from store.core import codec
from store.services.sessions import SessionStore
from store.backends.catalog.sqlite.view import sql

USER = "sfs_access_test"


def _other_user() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", USER], check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


def _as_user(uid: int, gid: int, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30)


needs_root_fuse = pytest.mark.skipif(not FUSE_AVAILABLE or os.geteuid() != 0 or not shutil.which("setpriv"),
                                     reason="needs FUSE, root and setpriv")


@pytest.fixture
def public_dir():
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="sfs-access-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@needs_root_fuse
def test_other_user_cannot_enter_without_allow_other(tmp_path, public_dir):
    uid, gid = _other_user()
    m = Mount(tmp_path / "store", public_dir / "mnt")
    m.start()
    try:
        (m.sessions / "s").mkdir()
        (m.sessions / "s" / "f.txt").write_text("secret")
        os.chmod(m.sessions / "s", 0o755)
        os.chmod(m.sessions / "s" / "f.txt", 0o644)
        r = _as_user(uid, gid, "ls", str(m.path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stdout, r.stderr)
        r = _as_user(uid, gid, "cat", str(m.sessions / "s" / "f.txt"))
        assert r.returncode != 0 and "secret" not in r.stdout, r
        assert "Permission denied" in r.stderr, r.stderr
    finally:
        m.cleanup()


@needs_root_fuse
def test_allow_other_permission_bits_decide(tmp_path, public_dir):
    uid, gid = _other_user()
    m = Mount(tmp_path / "store", public_dir / "mnt", "--allow-other")
    m.start()
    try:
        priv, pub = m.sessions / "priv", m.sessions / "pub"
        priv.mkdir()
        pub.mkdir()
        os.chmod(priv, 0o700)
        os.chmod(pub, 0o755)
        (priv / "a.txt").write_text("private dir")
        (pub / "open.txt").write_text("readable")
        (pub / "closed.txt").write_text("secret file")
        os.chmod(pub / "open.txt", 0o644)
        os.chmod(pub / "closed.txt", 0o600)
        r = _as_user(uid, gid, "ls", str(m.sessions))
        assert r.returncode == 0 and {"priv", "pub"} <= set(r.stdout.split()), r
        r = _as_user(uid, gid, "ls", str(priv))
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r = _as_user(uid, gid, "cat", str(priv / "a.txt"))
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r = _as_user(uid, gid, "ls", str(pub))
        assert r.returncode == 0 and set(r.stdout.split()) == {"open.txt", "closed.txt"}, r
        r = _as_user(uid, gid, "cat", str(pub / "open.txt"))
        assert r.returncode == 0 and r.stdout == "readable", r
        r = _as_user(uid, gid, "cat", str(pub / "closed.txt"))
        assert r.returncode != 0 and "Permission denied" in r.stderr and "secret" not in r.stdout, r
        # Not the owner: cannot write into a 0755 dir of root nor chmod root's file.
        r = _as_user(uid, gid, "touch", str(pub / "new.txt"))
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r = _as_user(uid, gid, "chmod", "0666", str(pub / "closed.txt"))
        assert r.returncode != 0, r
        assert stat.S_IMODE((pub / "closed.txt").stat().st_mode) == 0o600
    finally:
        m.cleanup()


BAD_PATHS = ["../escape", "sessions/../../etc/passwd", "sessions/a/../../x", "sessions/a\0b",
             "sessions/" + "n" * 256, "sessions/./x"]
BAD_IDS = ["..", ".", "../x", "/etc", "a/b", "a\0b", "x" * 256, ""]


def test_paths_and_ids_cannot_escape(tmp_path):
    root = tmp_path / "store"
    with Store.open(root, create=True) as st:
        for p in BAD_PATHS:
            with pytest.raises(BadInputError) as exc:
                st.write_files({p: b"x"})
            assert "path" in str(exc.value), exc.value
            with pytest.raises(BadInputError):
                st.read_path(p)
        # An absolute path means the store's own root, never the host's.
        st.write_files({"/sessions/abs/f": b"inside"})
        st.flush()
        assert st.read_path("sessions/abs/f") == b"inside"
        api = SessionStore(st)
        for sid in BAD_IDS:
            with pytest.raises(BadInputError):
                api.save_metadata({"id": sid, "name": "x"})
            with pytest.raises(BadInputError):
                api.load_metadata(sid)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()
    for p in ["../escape", "sessions/../../etc/passwd", "/../etc/passwd", "sessions/a\x01/" + "y" * 300]:
        for cmd in ("cat", "ls"):
            r = sessionfs(cmd, str(root), p, check=False)
            assert r.returncode == 1, (cmd, p, r.returncode, r.stdout, r.stderr)
            assert r.stderr.strip() and "Traceback" not in r.stderr, r.stderr
            assert "root:" not in r.stdout


def test_store_directory_is_private(tmp_path):
    root = tmp_path / "store"
    old = os.umask(0)
    try:
        Store.init(root)
    finally:
        os.umask(old)
    for d in (root, root / "packs", root / "packing", root / "staging"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    with Store.open(root) as st:
        st.write_files({"sessions/s/f": b"data" * 100})
        st.flush()
    for f in pack_files(root):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


def _store_with_pack(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "store"
    with Store.open(root, create=True) as st:
        st.write_files({"sessions/s/f.txt": b"the real content " * 50})
        st.flush()
    packs = pack_files(root)
    assert packs
    return root, packs[0]


def test_symlinked_pack_is_not_followed(tmp_path):
    root, pack = _store_with_pack(tmp_path)
    decoy = tmp_path / "decoy"
    decoy_bytes = b"root:x:0:0:DECOY:/root:/bin/sh\n" * 2000      # bigger than the pack
    decoy.write_bytes(decoy_bytes)
    pack.unlink()
    pack.symlink_to(decoy)
    try:
        st = Store.open(root)
    except FormatError as exc:              # refusing to open is fine too
        assert "DECOY" not in str(exc)
    else:
        with st:
            with pytest.raises((IntegrityError, OSError)) as exc:
                st.read_path("sessions/s/f.txt")
            assert "DECOY" not in str(exc.value)
            assert "pack" in str(exc.value) or "symbolic" in str(exc.value).lower() or \
                getattr(exc.value, "errno", None) == errno.ELOOP, exc.value
    # Nothing outside the store was read into a file or modified (not truncated, not written).
    assert decoy.read_bytes() == decoy_bytes
    r = sessionfs("cat", str(root), "sessions/s/f.txt", check=False)
    assert r.returncode != 0 and "DECOY" not in r.stdout and "Traceback" not in r.stderr, r
    assert decoy.read_bytes() == decoy_bytes


def test_symlinked_staging_is_refused(tmp_path):
    root, _ = _store_with_pack(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(root / "staging")
    (root / "staging").symlink_to(outside)
    with pytest.raises(FormatError) as exc:
        Store.open(root)
    assert "staging" in str(exc.value) and "symbolic link" in str(exc.value)
    sessionfs("cat", str(root), "sessions/s/f.txt", check=False)
    assert list(outside.iterdir()) == [], "the store wrote through a symlink out of its directory"


BOMB_READER = """
import os, sys
from mounting import proc_status_kb
from store import IntegrityError, Store
with Store.open(sys.argv[1]) as st:
    before = proc_status_kb(os.getpid(), "VmHWM")
    try:
        st.read_path("sessions/s/f.txt")
        error = "read the bomb without an error"
    except IntegrityError as exc:
        error = str(exc)
    print(before, proc_status_kb(os.getpid(), "VmHWM"), error)
"""


def test_decompression_bomb_block_is_refused(tmp_path):
    import zstandard
    root, pack = _store_with_pack(tmp_path)
    with Store.open(root) as st:
        blocks = sql(st.catalog.reader()).execute("SELECT id, raw_length FROM blocks").fetchall()
    assert len(blocks) == 1
    # A header claiming 4 GiB - 1 (over MAX_BLOCK_RAW) and a frame that really expands to 64 MiB.
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 << 20))
    for raw_len in (0xFFFFFFFF, codec.MAX_BLOCK_RAW, 1000):
        framed = codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, 0, raw_len, len(bomb)) + bomb
        with pytest.raises(IntegrityError):
            codec.decode_block(framed, "bomb")
    # Pack level: the stored block becomes a whole bomb whose header tells the block's true raw
    # length (as the catalog does); only the frame itself says 64 MiB.
    block_id, raw_length = blocks[0]
    framed = codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, 0, raw_length, len(bomb)) + bomb
    offset = pack.stat().st_size
    with open(pack, "ab") as f:
        f.write(framed)
    db = sqlite3.connect(root / "catalog.db", isolation_level=None)
    db.execute("UPDATE blocks SET offset = ?, length = ?, codec = ? WHERE id = ?",
               (offset, len(framed), codec.CODEC_ZSTD, block_id))
    db.execute("UPDATE packs SET size = ? WHERE id = (SELECT pack_id FROM blocks WHERE id = ?)",
               (offset + len(framed), block_id))
    db.close()
    # The read runs in a fresh process that reports its own peak (VmHWM) before and after it:
    # decoding the bomb whole would take 64 MiB at least.
    read = subprocess.run([sys.executable, "-c", BOMB_READER, str(root)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent)
    assert read.returncode == 0, read.stderr
    before, after, error = read.stdout.split(" ", 2)
    assert "block" in error or "hash" in error, error
    grown = int(after) - int(before)
    print(f"\nreading the bomb: peak memory {before} KiB before, {after} KiB after")
    assert grown < 16 * 1024, f"reading the bomb raised the peak memory by {grown} KiB"
    r = sessionfs("verify", "--data", str(root), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r
