"""Real shell tools on a real mount, and the mount's own life cycle (``sessionfs mount/umount``).

Each test mounts a fresh store with the daemonized ``sessionfs mount`` (the ``mount``
fixture) and drives it with the tools users run: ``cp -a``, ``sha256sum``, ``rsync``,
``diff -r``, ``tar``, ``grep -r``, ``find``, ``mv``, ``rm -r``. The source is a
generated session tree (``contrib.corpus`` + ``store.layout.split_session``: chunk
files and binary attachments) on the plain disk; the mount must give back the same
bytes, modes and mtimes, before and after a remount. What the store holds underneath
is checked by opening it read-only (allowed while mounted) or, once unmounted, for
writing: the sessions table follows ``mv``, and ``rm -r`` releases every chunk
reference the session held.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import orjson
import pytest

from checks import assert_catalog_consistent
from mounting import FUSE_AVAILABLE, Mount, process_alive, sessionfs
from shared_store import on_both_stores
from fusefs.daemon import mounted_here
from store import Store
from store.backends.catalog.sqlite.view import sql

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

SEED = 11


# ---------------------------------------------------------------- helpers
def sh(*cmd: str, cwd: Path | str | None = None, input: bytes | None = None, check: bool = True) -> str:
    """Run a real tool; fail with its stderr when it fails."""
    r = subprocess.run(list(cmd), cwd=cwd, input=input, capture_output=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.decode(errors='replace')}")
    return r.stdout.decode(errors="surrogateescape")


def shell(script: str, cwd: Path | str | None = None) -> str:
    r = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=cwd, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"{script!r} failed ({r.returncode}):\n{r.stderr.decode(errors='replace')}")
    return r.stdout.decode(errors="surrogateescape")


def write_session_tree(sessions_dir: Path, seed: int, index: int) -> tuple[str, dict]:
    """Write one generated small session as the mount shows it; returns (id, session dict)."""
    from contrib.corpus import generate_session
    from store.core.layout import split_session

    session, attachments = generate_session(seed, index, profile="small")
    sid = session["id"]
    root = sessions_dir / sid
    for rel, value in split_session(session).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    (root / "attachments").mkdir(exist_ok=True)
    for name, blob in attachments.items():
        (root / "attachments" / name).write_bytes(blob)
    return sid, session


def tree_state(root: Path, *, mtime_div: int = 1) -> dict[str, tuple]:
    """relative path -> (kind, mode bits, mtime, size, sha256) for everything below ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                             st.st_mtime_ns // mtime_div,
                                             st.st_size if stat.S_ISREG(st.st_mode) else None, digest)
    return out


def sha256sums(root: Path) -> str:
    """``sha256sum`` of every file below ``root``, relative names, sorted."""
    return shell("find . -type f -print0 | sort -z | xargs -0 sha256sum", cwd=root)


def chunks_under(store: Store, path: str) -> set[int]:
    """Chunk ids referenced by the files below ``path`` (a store path)."""
    db = store.catalog.reader()
    top = store.resolve(path)
    assert top is not None, path
    inos, todo = set(), [top]
    while todo:
        ino = todo.pop()
        inos.add(ino)
        todo.extend(r[0] for r in sql(db).execute("SELECT ino FROM dentries WHERE parent = ?", (ino,)))
    ids = set()
    for ino in inos:
        ids.update(r[0] for r in sql(db).execute("SELECT chunk_id FROM file_chunks WHERE ino = ?", (ino,)))
    return ids


def fsync_dir(path: Path) -> None:
    """fsync(2) a directory on the mount: everything queued becomes committed and durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the source tree
@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, list[str], dict]:
    """Two generated small sessions under <tmp>/sessions, with a few non-default modes and mtimes."""
    root = tmp_path_factory.mktemp("src") / "sessions"
    root.mkdir()
    sids, docs = [], {}
    for index in range(2):
        sid, doc = write_session_tree(root, SEED, index)
        sids.append(sid)
        docs[sid] = doc
    first = root / sids[0]
    os.chmod(first / "summary.json", 0o600)
    os.chmod(first / "attachments", 0o750)
    os.chmod(root / sids[1] / "metadata.json", 0o640)
    # old mtimes with nanoseconds, on files and then on directories (children first)
    t0 = 1_700_000_000_123_456_789
    for k, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(p, ns=(t0 + k * 1_000_000_007, t0 + k * 1_000_000_007), follow_symlinks=False)
    return root, sids, docs


def ocr_line(doc: dict) -> str:
    """A distinctive OCR line of a screenshot that JSON writes verbatim (no escapes)."""
    for shot in doc["screenshots"]:
        for line in shot["analysis"]["extractedText"]:
            if len(line) > 25 and line.isascii() and '"' not in line and "\\" not in line and "/" in line:
                return line
    raise AssertionError("no usable OCR line in the generated session")


# ---------------------------------------------------------------- tests
@on_both_stores
def test_cp_rsync_tar_grep_find_and_remount(mount: Mount, source, tmp_path):
    src, sids, docs = source
    mnt = mount.sessions

    sh("cp", "-a", f"{src}/.", f"{mnt}/")
    expected = tree_state(src)
    assert tree_state(mnt) == expected, "cp -a: bytes, modes or mtimes differ on the mount"
    assert sha256sums(mnt) == sha256sums(src)

    # rsync out again: no differences, by content (diff -r) and by rsync's own size+mtime / checksum view
    out = tmp_path / "rsync-out"
    sh("rsync", "-a", f"{mnt}/", f"{out}/")
    sh("diff", "-r", str(src), str(out))
    assert tree_state(out) == expected
    assert sh("rsync", "-a", "-n", "-i", f"{src}/", f"{mnt}/") == ""
    assert sh("rsync", "-a", "-n", "-i", "--checksum", f"{src}/", f"{mnt}/") == ""

    # tar c | tar x, out of the mount and into it
    untarred = tmp_path / "untarred"
    untarred.mkdir()
    shell(f"tar -C {mnt} --format=posix -cf - . | tar -C {untarred} -xf -")
    sh("diff", "-r", str(src), str(untarred))
    assert tree_state(untarred, mtime_div=1000) == tree_state(src, mtime_div=1000)
    (mnt / "copy").mkdir()      # not a session (no metadata.json at its top): just a directory
    shell(f"tar -C {src} --format=posix -cf - {sids[0]} | tar -C {mnt}/copy -xf -")
    assert tree_state(mnt / "copy" / sids[0], mtime_div=1000) == tree_state(src / sids[0], mtime_div=1000)

    # grep -r finds OCR text inside screenshot chunk files: the same lines in the same files
    line = ocr_line(docs[sids[0]])
    on_src = sh("grep", "-r", "-n", "-F", "--", line, ".", cwd=src)
    on_mnt = sh("grep", "-r", "-n", "-F", "--", line, f"./{sids[0]}", f"./{sids[1]}", cwd=mnt)
    assert on_src and "screenshots/chunk-" in on_src
    assert sorted(on_mnt.splitlines()) == sorted(on_src.splitlines())

    n_src = int(shell("find . -name 'chunk-*.json' | wc -l", cwd=src))
    n_mnt = int(shell(f"find ./{sids[0]} ./{sids[1]} -name 'chunk-*.json' | wc -l", cwd=mnt))
    assert n_src == n_mnt >= 6

    # unmount, mount again: everything is there byte for byte, with cp -a's modes and mtimes
    copied = tree_state(mnt / "copy")
    mount.remount()
    assert tree_state(mnt / sids[0]) == tree_state(src / sids[0])
    assert tree_state(mnt / sids[1]) == tree_state(src / sids[1])
    assert tree_state(mnt / "copy") == copied
    assert sha256sums(mnt / sids[0]) == sha256sums(src / sids[0])


def test_mv_and_rm_r_follow_in_the_sessions_table_and_references(mount: Mount, source):
    src, sids, _ = source
    mnt = mount.sessions
    sh("cp", "-a", f"{src}/.", f"{mnt}/")
    fsync_dir(mnt)

    with Store.open(mount.store, readonly=True) as ro:      # allowed beside the daemon
        rows = dict(sql(ro.catalog.reader()).execute("SELECT id, dir_ino FROM sessions").fetchall())
    assert set(rows) == set(sids)

    # mv a session directory: the sessions table follows
    moved = "renamed-" + sids[1]
    sh("mv", str(mnt / sids[1]), str(mnt / moved))
    assert tree_state(mnt / moved) == tree_state(src / sids[1])
    with Store.open(mount.store, readonly=True) as ro:
        after = dict(sql(ro.catalog.reader()).execute("SELECT id, dir_ino FROM sessions").fetchall())
        held = chunks_under(ro, f"sessions/{sids[0]}")
        others = chunks_under(ro, f"sessions/{moved}")
    assert set(after) == {sids[0], moved}
    assert after[moved] == rows[sids[1]], "the moved session keeps its directory inode"
    listing = sessionfs("ls", str(mount.store), "sessions").stdout.split()
    assert sorted(listing) == sorted([sids[0], moved])

    # rm -r a session: its row goes at once, its references once the kernel lets go (at the latest, unmount)
    unique = held - others
    assert unique, "the session should hold chunks no other session has"
    sh("rm", "-r", str(mnt / sids[0]))
    assert not (mnt / sids[0]).exists()
    with Store.open(mount.store, readonly=True) as ro:
        ids = [r[0] for r in sql(ro.catalog.reader()).execute("SELECT id FROM sessions")]
    assert ids == [moved]
    mount.umount()

    with Store.open(mount.store) as store:
        assert_catalog_consistent(store)
        db = store.catalog.reader()
        marks = ",".join("?" * len(unique))
        counts = sql(db).execute(f"SELECT refcount FROM chunks WHERE id IN ({marks})", sorted(unique)).fetchall()
        assert all(r[0] == 0 for r in counts), "a chunk only the removed session used is still referenced"
        assert sql(db).execute("SELECT count(*) FROM inodes WHERE nlink = 0").fetchone()[0] == 0
        # what is left reads back exactly
        for p in (src / sids[1]).rglob("*"):
            if p.is_file():
                rel = p.relative_to(src / sids[1])
                assert store.read_path(f"sessions/{moved}/{rel}") == p.read_bytes()
    r = sessionfs("verify", str(mount.store), "--data", check=False)   # the store's own consistency check
    assert r.returncode == 0, f"sessionfs verify --data found problems:\n{r.stdout}{r.stderr}"
    mount.start()
    assert tree_state(mnt / moved) == tree_state(src / sids[1])


def test_umount_waits_for_the_daemon_and_a_second_mount_is_refused(mount: Mount, tmp_path):
    d = mount.sessions / "s1"
    d.mkdir()
    payload = os.urandom(300_000)
    (d / "a.bin").write_bytes(payload)
    pid = mount.pid
    before = sorted(p.name for p in mount.store.iterdir())
    owner = (mount.store / "owner.json").read_bytes()

    # the same store on a second mountpoint: exit 1, a clear message, nothing changed
    other = tmp_path / "mnt2"
    other.mkdir()
    r = sessionfs("mount", str(mount.store), str(other), check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("sessionfs: ") and "in use" in r.stderr and str(pid) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not mounted_here(other)
    assert sorted(p.name for p in mount.store.iterdir()) == before
    assert (mount.store / "owner.json").read_bytes() == owner
    # a second writer in-process is refused the same way
    from store.core.errors import LockedError
    with pytest.raises(LockedError, match="in use"):
        Store.open(mount.store)
    # the same mountpoint again (another store): refused before that store is even created
    r = sessionfs("mount", str(tmp_path / "store2"), str(mount.path), check=False)
    assert r.returncode == 1 and r.stderr.startswith("sessionfs: ") and "mountpoint" in r.stderr, r.stderr
    assert not (tmp_path / "store2").exists()
    # the first mount still serves
    assert (d / "a.bin").read_bytes() == payload

    # umount returns only once the daemon has exited and released the store
    mount.umount()
    assert not process_alive(pid)
    assert not mounted_here(mount.path)
    with Store.open(mount.store) as store:       # the write lock is free
        assert store.read_path("sessions/s1/a.bin") == payload
        assert os.listdir(store.root / "staging") == []
        assert_catalog_consistent(store)
    # umount of something that is not mounted: a clear error
    r = sessionfs("umount", str(mount.path), check=False)
    assert r.returncode == 1 and r.stderr.startswith("sessionfs: ") and "not a sessionfs mount" in r.stderr
