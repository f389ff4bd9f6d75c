"""Concurrent readers and writers on one mount, and the session API beside the mount.

- 8 threads on a daemonized mount: writers replace files (temp file + rename, the
  way apps write atomically) in a shared session directory and in their own, and
  rewrite their own files in place, reading each back after close; readers read
  every replaced file whole, list and stat the directories. Every version is
  self-checking (its name, version, length and SHA-256 in a header), so a reader
  that sees a torn or mixed file fails. After a remount every file holds the last
  version written, and the sessions table lists every session directory.
- The session API in the same process as the mount (the daemon holds the store's
  write lock, so this serves an open Store from a thread with
  ``fusefs.daemon.serve_store``): a file read through the mount (so the kernel
  caches its pages and attributes) and then rewritten with ``write_files`` reads
  back through the mount with the new bytes once ``settle()`` returns, also
  through a file descriptor opened before the change.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from pathlib import Path

import orjson
import pytest

from mounting import FUSE_AVAILABLE, Mount, served, sessionfs
from store import Store
from store.backends.catalog.sqlite.view import sql

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

RUN_SECONDS = 4.0
POOL = random.Random(3).randbytes(1 << 21)
SIZES = (10, 3_000, 40_000, 150_000, 600_000)


def make(name: str, version: int, rnd: random.Random) -> bytes:
    """One self-checking version of ``name`` (metadata.json is real JSON, so the session index reads it)."""
    size = rnd.choice(SIZES)
    start = rnd.randrange(len(POOL) - size)
    body = POOL[start:start + size]
    digest = hashlib.sha256(body).hexdigest()
    if name.endswith("metadata.json"):
        sid = name.split("/")[-2]
        return orjson.dumps({"id": sid, "name": f"session {sid}", "status": "active", "version": version,
                             "pad": body.hex()[:2 * min(size, 4000)], "padFor": name}) + b"\n"
    return b"%s %d %d %s\n" % (name.encode(), version, size, digest.encode()) + body


def check(name: str, data: bytes) -> int:
    """The version ``data`` holds, after asserting it is one complete version of ``name``."""
    if name.endswith("metadata.json"):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{name}: {len(data)} bytes that are not one whole JSON document (torn)") from None
        assert doc["padFor"] == name, f"{name}: holds {doc['padFor']} (mixed)"
        return doc["version"]
    head, sep, body = data.partition(b"\n")
    assert sep, f"{name}: {len(data)} bytes without a header (torn)"
    hname, version, size, digest = head.split(b" ")
    assert hname.decode() == name, f"{name}: holds {hname!r} (mixed)"
    assert len(body) == int(size), f"{name}: {len(body)} body bytes, header says {int(size)} (torn)"
    assert hashlib.sha256(body).hexdigest().encode() == digest, f"{name}: checksum fails (torn or mixed)"
    return int(version)


def replace(root: Path, name: str, data: bytes, tag: str, lock: threading.Lock | None = None,
            on_renamed=None) -> None:
    """Write a temp file and rename it over ``name``: readers see the old or the new file, whole.

    With ``lock``, the rename and ``on_renamed()`` happen under it: the test records which
    version of a name was renamed last, which is the file's final content."""
    path = root / name
    tmp = path.with_name(f".{path.name}.tmp-{tag}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:131072]):]
    finally:
        os.close(fd)
    with lock or contextlib.nullcontext():
        os.rename(tmp, path)
        if on_renamed is not None:
            on_renamed()


class Workers:
    def __init__(self):
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.counts: dict[str, int] = {}

    def spawn(self, name: str, fn, *args) -> None:
        self.counts[name] = 0

        def run():
            try:
                while not self.stop.is_set():
                    fn(*args)
                    self.counts[name] += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                import traceback
                self.errors.append(f"{name}: {exc!r}\n{traceback.format_exc()}")
                self.stop.set()
        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "a worker hangs on the mount"


def test_eight_concurrent_readers_and_writers(mount: Mount):
    root = mount.sessions
    shared = ["shared/metadata.json", "shared/summary.json", "shared/screenshots/chunk-001.json",
              "shared/attachments/a.bin"]
    own = {w: [f"{w}/metadata.json", f"{w}/transcription.json", f"{w}/attachments/b.bin"] for w in ("w1", "w2", "w3", "w4")}
    in_place = {w: f"{w}/notes.txt" for w in own}
    versions: dict[str, int] = {}
    last: dict[str, bytes] = {}        # name -> the content renamed (or written) last: its final content
    lock = threading.Lock()
    rename_locks = {name: threading.Lock() for name in shared + [n for names in own.values() for n in names]}
    for name in shared + [n for names in own.values() for n in names] + list(in_place.values()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        data = make(name, 0, random.Random(name))
        replace(root, name, data, "init")
        versions[name], last[name] = 0, data

    def writer(w: str, rnd: random.Random) -> None:
        name = rnd.choice(shared if rnd.random() < 0.5 else own[w])
        with lock:
            versions[name] += 1
            v = versions[name]
        data = make(name, v, rnd)
        replace(root, name, data, w, rename_locks[name], lambda: last.__setitem__(name, data))
        # a rewrite in place of the writer's own file: read back whole after close (no stale cache)
        if rnd.random() < 0.3:
            name = in_place[w]
            with lock:
                versions[name] += 1
                v = versions[name]
            data = make(name, v, rnd)
            with open(root / name, "r+b") as f:
                f.truncate(0)
                f.write(data)
            assert (root / name).read_bytes() == data, f"{name}: read after close differs from what was written"
            assert os.stat(root / name).st_size == len(data)
            with lock:
                last[name] = data

    def reader(rnd: random.Random) -> None:
        name = rnd.choice(shared + [n for names in own.values() for n in names])
        with open(root / name, "rb") as f:
            data = f.read()
            check(name, data)
            f.seek(0)
            assert f.read() == data, f"{name}: one open file read twice gave different bytes"
        d = (root / name).parent
        names = os.listdir(d)
        assert Path(name).name in names
        for entry in names:
            try:
                os.stat(d / entry)
            except FileNotFoundError:
                assert entry.startswith("."), f"{d / entry}: listed but gone (only temp files come and go)"

    workers = Workers()
    for k, w in enumerate(own):
        workers.spawn(w, writer, w, random.Random(100 + k))
    for k in range(4):
        workers.spawn(f"r{k}", reader, random.Random(200 + k))
    # run for RUN_SECONDS, longer on a slow machine until every worker has done a few rounds
    start = time.monotonic()
    while not workers.stop.is_set():
        elapsed = time.monotonic() - start
        if elapsed > RUN_SECONDS and min(workers.counts.values()) >= 5 or elapsed > 60:
            break
        time.sleep(0.05)
    workers.stop.set()
    workers.join()
    assert not workers.errors, "\n".join(workers.errors)
    assert min(workers.counts.values()) >= 5, workers.counts

    mount.remount()
    for name, data in last.items():
        got = (root / name).read_bytes()
        assert got == data, f"{name}: after remount holds version {check(name, got)}, last written {check(name, data)}"
    leftovers = [p for p in root.rglob(".*.tmp-*")]
    assert leftovers == []
    with Store.open(mount.store, readonly=True) as ro:
        ids = {r[0] for r in sql(ro.catalog.reader()).execute("SELECT id FROM sessions")}
    assert ids == {"shared", *own}
    r = sessionfs("verify", str(mount.store), "--data", check=False)   # read-only: allowed while mounted
    assert r.returncode == 0, f"sessionfs verify --data found problems:\n{r.stdout}{r.stderr}"


# ---------------------------------------------------------------- session API beside the mount
def test_a_file_written_through_the_session_api_shows_its_new_bytes_on_the_mount(tmp_path):
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here")
    store = Store.open(tmp_path / "store", create=True)
    try:
        meta = orjson.dumps({"id": "api", "name": "first", "status": "active"})
        store.write_files({"sessions/api/metadata.json": meta, "sessions/api/notes.txt": b"version one\n" * 3000,
                           "sessions/api/same.bin": b"A" * 200_000, "sessions/api/gone.txt": b"doomed\n"})
        store.settle()
        with served(store, tmp_path / "mnt") as mnt:
            d = mnt / "sessions" / "api"
            notes, same = d / "notes.txt", d / "same.bin"
            # read everything through the mount twice: the kernel now caches pages, attributes, names
            for _ in range(2):
                assert notes.read_bytes() == b"version one\n" * 3000
                assert same.read_bytes() == b"A" * 200_000
                assert (d / "gone.txt").read_bytes() == b"doomed\n"
                assert orjson.loads((d / "metadata.json").read_bytes())["name"] == "first"
            held = open(same, "rb")            # opened before the change, read after it
            try:
                assert not (d / "new.txt").exists()

                store.write_files({"sessions/api/notes.txt": b"v2\n" * 50,            # shorter
                                   "sessions/api/same.bin": b"B" * 200_000,           # same size, new bytes
                                   "sessions/api/metadata.json": orjson.dumps({"id": "api", "name": "second",
                                                                               "status": "active"}),
                                   "sessions/api/new.txt": b"born through the API\n",
                                   "sessions/api/gone.txt": None})
                store.settle()

                assert notes.read_bytes() == b"v2\n" * 50
                assert os.stat(notes).st_size == 150
                assert same.read_bytes() == b"B" * 200_000
                held.seek(0)
                assert held.read() == b"B" * 200_000
                assert orjson.loads((d / "metadata.json").read_bytes())["name"] == "second"
                assert (d / "new.txt").read_bytes() == b"born through the API\n"
                assert sorted(os.listdir(d)) == ["metadata.json", "new.txt", "notes.txt", "same.bin"]
                with pytest.raises(FileNotFoundError):
                    (d / "gone.txt").read_bytes()

                # and the other way round: written through the mount, read through the API
                (d / "notes.txt").write_bytes(b"from the mount\n")
                fd = os.open(d / "notes.txt", os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                assert store.read_path("sessions/api/notes.txt") == b"from the mount\n"
                # a grown file keeps no stale size either
                store.write_files({"sessions/api/notes.txt": b"x" * 1_000_000})
                store.settle()
                assert notes.read_bytes() == b"x" * 1_000_000
            finally:
                held.close()
    finally:
        store.close()
