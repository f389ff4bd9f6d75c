"""The WebDAV server as Linux mounts it (davfs2, Debian ``davfs2``), driven by the tools the
FUSE mount tests use (``cp -a``, ``rsync -a``, ``tar``, ``grep -r``, ``find``,
``sha256sum``): the bytes come back exactly, and again after the server restarts. Also
kill -9 of the server during a stream of PUTs: every acknowledged PUT is there after the
restart, and no file is torn.

WebDAV carries no modes, owners or settable mtimes, so only bytes, names and the tree's
shape are compared (davfs2 keeps the rest in its cache until unmounted)."""

from __future__ import annotations

import hashlib
import threading

import pytest

from test_mount_tools import ocr_line, sh, sha256sums, shell, source  # noqa: F401 - source is a fixture
from webdav_serving import DAVFS_AVAILABLE, Client, Server, davfs as davfs_mount

needs_davfs = pytest.mark.skipif(not DAVFS_AVAILABLE, reason="davfs2 (mount.davfs) or /dev/fuse is missing")


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "store").start()
    yield s
    s.cleanup()


@needs_davfs
def test_real_tools_round_trip_through_davfs2_and_a_restart(server, source, tmp_path):
    src, sids, docs = source
    davfs = davfs_mount(server.url, tmp_path / "mnt").mount()
    mnt = davfs.path / "sessions"

    def remount() -> None:
        """Unmount (davfs2 uploads what it holds) and mount again with an empty cache: davfs2 1.6
        on Linux 6.18 shows a file it has just uploaded as empty until it next refreshes it
        (it does so with WsgiDAV's own file system provider too), so what was written is read
        back through a fresh mount."""
        davfs.umount()
        davfs.mount()

    try:
        shell(f"cp -a {src}/. {mnt}/ 2>/dev/null || cp -r {src}/. {mnt}/")     # modes and times: not WebDAV's
        sh("rsync", "-rl", f"{src}/{sids[0]}/", f"{mnt}/rsynced/")                 # temporary names, renamed
        (mnt / "copy").mkdir()
        shell(f"tar -C {src} -cf - {sids[1]} | tar -C {mnt}/copy -xf -")
        remount()
        assert sha256sums(mnt / sids[0]) == sha256sums(src / sids[0])
        assert sha256sums(mnt / sids[1]) == sha256sums(src / sids[1])
        assert sha256sums(mnt / "rsynced") == sha256sums(src / sids[0])
        assert sha256sums(mnt / "copy" / sids[1]) == sha256sums(src / sids[1])

        out = tmp_path / "rsync-out"
        sh("rsync", "-a", f"{mnt}/{sids[0]}", f"{mnt}/{sids[1]}", f"{out}/")
        sh("diff", "-r", str(src), str(out))
        untarred = tmp_path / "untarred"
        untarred.mkdir()
        shell(f"tar -C {mnt} -cf - {sids[0]} {sids[1]} | tar -C {untarred} -xf -")
        sh("diff", "-r", str(src), str(untarred))
        line = ocr_line(docs[sids[0]])
        on_src = sh("grep", "-r", "-n", "-F", "--", line, ".", cwd=src)
        on_mnt = sh("grep", "-r", "-n", "-F", "--", line, f"./{sids[0]}", f"./{sids[1]}", cwd=mnt)
        assert on_src and sorted(on_mnt.splitlines()) == sorted(on_src.splitlines())
        n_src = int(shell("find . -name 'chunk-*.json' | wc -l", cwd=src))
        assert int(shell(f"find ./{sids[0]} ./{sids[1]} -name 'chunk-*.json' | wc -l", cwd=mnt)) == n_src >= 6
        before = sha256sums(mnt)
        davfs.umount()

        server.stop()
        server.start()
        davfs.mount()
        assert sha256sums(mnt) == before
    finally:
        davfs.cleanup()


def body(i: int) -> bytes:
    """A file that says whether it is whole: its length and digest lead, 200 KiB follow."""
    payload = hashlib.sha256(str(i).encode()).digest() * (200 * 1024 // 32)
    return f"{i} {len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload


def whole(data: bytes) -> bool:
    head, _, payload = data.partition(b"\n")
    _, size, digest = head.split()
    return len(payload) == int(size) and hashlib.sha256(payload).hexdigest() == digest.decode()


def test_kill_9_during_a_stream_of_puts_loses_no_acknowledged_put(server):
    c = Client(server.url)
    assert c.request("MKCOL", "/sessions/stream/")[0] == 201
    acked: list[int] = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            try:
                status = c.request("PUT", f"/sessions/stream/f{i % 40:03}.bin", body(i))[0]
            except OSError:
                return
            if status in (201, 204):
                acked.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acked) < 60:
        assert thread.is_alive()
        threading.Event().wait(0.01)
    server.kill9()
    stop.set()
    thread.join(120)
    server.start()
    latest = {}
    for i in acked:
        latest[i % 40] = i
    for slot in range(40):
        status, _, data = c.request("GET", f"/sessions/stream/f{slot:03}.bin")
        if status == 404:
            assert slot not in latest
            continue
        assert status == 200 and whole(data), f"f{slot:03}.bin is torn"
        got = int(data.split(b" ", 1)[0])
        assert got >= latest.get(slot, -1), f"f{slot:03}.bin lost the acknowledged PUT {latest[slot]} (has {got})"
    server.stop()
