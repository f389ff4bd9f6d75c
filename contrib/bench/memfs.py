"""A minimal read-only in-memory pyfuse3 filesystem: the Python FUSE ceiling.

    python -m contrib.bench.memfs SOURCE_DIR MOUNTPOINT

Loads every directory, file and symlink under SOURCE_DIR into dicts (bytes in
memory), mounts them at MOUNTPOINT with the same pyfuse3 + trio setup as
sessionfs (``pyfuse3.default_options``, ``keep_cache`` on open, 60 s entry and
attribute timeouts, readdirplus replies with attributes) and serves them until
unmounted (``fusermount3 -u``) or sent SIGINT/SIGTERM. Handlers answer straight
from the dicts inside the event loop: no catalog, no threads, no hashing, no
decompression. Whatever sessionfs spends above this is the store's cost; what
this spends above ext4 is FUSE's and Python's.

Prints ``ready <pid>`` on stdout once mounted (``MemFS.start`` waits for it).
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

TIMEOUT = 60.0          # entry/attribute timeout, as sessionfs (fusefs/ops.py)
FSTYPE = "fuse.memfs"


def load_tree(src: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(attrs {ino: os.stat_result-like tuple}, children {ino: [(name, ino)]}, data {ino: bytes})."""
    import pyfuse3
    root = os.fspath(src)
    attrs: dict[int, os.stat_result] = {}
    children: dict[int, list[tuple[bytes, int]]] = {}
    data: dict[int, bytes] = {}
    links: dict[int, bytes] = {}
    next_ino = [pyfuse3.ROOT_INODE]

    def add(path: str) -> int:
        ino = next_ino[0]
        next_ino[0] += 1
        st = os.lstat(path)
        attrs[ino] = st
        if stat.S_ISDIR(st.st_mode):
            kids = []
            for name in sorted(os.listdir(path)):
                kids.append((os.fsencode(name), add(os.path.join(path, name))))
            children[ino] = kids
        elif stat.S_ISLNK(st.st_mode):
            links[ino] = os.fsencode(os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                data[ino] = f.read()
        return ino

    add(root)
    data.update(links)
    return attrs, children, data


def make_ops(attrs: dict, children: dict, data: dict):
    import pyfuse3

    index = {ino: {name: child for name, child in kids} for ino, kids in children.items()}
    parents = {child: ino for ino, kids in children.items() for _, child in kids}
    entries: dict[int, pyfuse3.EntryAttributes] = {}
    for ino, st in attrs.items():
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_mode = st.st_mode
        a.st_nlink = st.st_nlink
        a.st_uid = st.st_uid
        a.st_gid = st.st_gid
        a.st_rdev = 0
        a.st_size = len(data[ino]) if ino in data else st.st_size
        a.st_blksize = 128 * 1024
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns = st.st_atime_ns
        a.st_mtime_ns = st.st_mtime_ns
        a.st_ctime_ns = st.st_ctime_ns
        entries[ino] = a

    class MemFS(pyfuse3.Operations):
        enable_writeback_cache = False

        async def lookup(self, parent_inode, name, ctx=None):
            if name == b".":
                return entries[parent_inode]
            if name == b"..":
                return entries[parents.get(parent_inode, pyfuse3.ROOT_INODE)]
            child = index.get(parent_inode, {}).get(name)
            if child is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return entries[child]

        async def getattr(self, inode, ctx=None):
            try:
                return entries[inode]
            except KeyError:
                raise pyfuse3.FUSEError(errno.ENOENT) from None

        async def readlink(self, inode, ctx):
            return data[inode]

        async def opendir(self, inode, ctx):
            if inode not in children:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh, start_id, token):
            kids = children[fh]
            for i in range(start_id, len(kids)):
                name, child = kids[i]
                if not pyfuse3.readdir_reply(token, name, entries[child], i + 1):
                    return

        async def releasedir(self, fh):
            return None

        async def open(self, inode, flags, ctx):
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise pyfuse3.FUSEError(errno.EROFS)
            if inode in children:
                raise pyfuse3.FUSEError(errno.EISDIR)
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh, off, size):
            return data[fh][off:off + size]

        async def flush(self, fh):
            return None         # answered (not ENOSYS), so every close() costs a FLUSH round trip, as on sessionfs

        async def release(self, fh):
            return None

        async def statfs(self, ctx):
            s = pyfuse3.StatvfsData()
            s.f_bsize = s.f_frsize = 4096
            s.f_blocks = sum(len(v) for v in data.values()) // 4096 + 1
            s.f_files = len(entries)
            s.f_namemax = 255
            return s

    return MemFS()


def serve(src: str, mountpoint: str) -> None:
    import pyfuse3
    import trio

    t0 = time.perf_counter()
    attrs, children, data = load_tree(src)
    ops = make_ops(attrs, children, data)
    opts = set(pyfuse3.default_options) | {"fsname=memfs", "subtype=memfs"}
    pyfuse3.init(ops, mountpoint, opts)
    print(f"ready {os.getpid()} {len(attrs)} {time.perf_counter() - t0:.3f}", flush=True)

    async def main():
        async with trio.open_nursery() as nursery:
            async def watch():
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                    async for _ in sigs:
                        pyfuse3.terminate()
                        return
            nursery.start_soon(watch)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        pyfuse3.close(unmount=True)


class MemFS:
    """Run ``python -m contrib.bench.memfs SRC MNT`` as a child process; ``start``/``stop``/``restart``."""

    def __init__(self, src: Path, mnt: Path):
        self.src, self.mnt = Path(src), Path(mnt)
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None

    def start(self, timeout: float = 300) -> "MemFS":
        self.mnt.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "contrib.bench.memfs", str(self.src), str(self.mnt)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=root)
        line = self.proc.stdout.readline().decode()      # blocks until mounted (or the child died)
        if not line.startswith("ready"):
            err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            self.proc.wait(timeout=timeout)
            self.proc = None
            raise RuntimeError(f"memfs did not start: {err[-1] if err else 'no output'}")
        self.pid = int(line.split()[1])
        return self

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None:
            return
        subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        self.proc = None
        self.pid = None

    def restart(self) -> "MemFS":
        self.stop()
        return self.start()

    def __enter__(self) -> "MemFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    serve(args[0], args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
