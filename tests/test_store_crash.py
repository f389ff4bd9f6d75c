"""Crash safety with real processes and SIGKILL.

A child process (forked from a fork server) opens the store and loops: atomic
path-API groups of files (``write_files``), inode-API rewrites of files
(``write``/``truncate``/``seal``, sometimes ``fsync``) and ``flush``es, reporting through a log file what it has
sealed, fsynced and flushed (each line written after the call returned). The
parent SIGKILLs it at random moments, and at chosen points of a batch commit
(hooks that announce themselves through a pipe and pause), then reopens the
store itself and checks:

- ``Store.open`` succeeds on its own and leaves no staged file behind;
- every file is absent/an earlier version or a complete later one: contents are
  deterministic per (path, version) and carry a SHA-256 of their payload, so a
  torn or mixed file is caught;
- all files of one ``write_files`` group are at the same version;
- what was flushed, fsynced or sealed (closed) before the kill is there;
- versions never go back between rounds;
- reference counts match ``file_chunks``; every chunk, block and pack exists and
  every referenced chunk hashes correctly (checked directly on the packs, and
  by reading every file in full through the store).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import signal
import stat
import time
import traceback
from pathlib import Path

import orjson
import pytest

from store import Store
from store.core import codec
from store.engine.store import Store as EngineStore
from store.backends.objects.packs import Packer, local_packer
from store.engine.persist import Persister
from store.engine.overlay import Overlay
from store.backends.catalog.sqlite.view import sql
from checks import assert_catalog_consistent, pack_file

WORDS = ("session editor terminal focus python function review commit branch window screenshot "
         "analysis user opened file error test passed failed debugging refactor meeting notes "
         "design document browser search query result build deploy log warning").split()
_rnd = random.Random(1234)
TEXT_POOL = " ".join(_rnd.choice(WORDS) for _ in range(150_000)).encode()   # ~1 MB of text
BIN_POOL = _rnd.randbytes(1 << 20)

GROUPS = {
    f"g{k}": [f"sessions/g{k}/metadata.json", f"sessions/g{k}/summary.json",
              f"sessions/g{k}/screenshots/chunk-001.json", f"sessions/g{k}/attachments/a{k}.bin"]
    for k in range(3)
}
INODE_FILES = [f"f{j}.bin" for j in range(3)]          # in sessions/inode/
INODE_DIR = "sessions/inode"
SIZES = [150, 2_000, 9_000, 30_000, 90_000, 250_000]


def tomb(group: str) -> str:
    return f"sessions/tomb-{group}.json"


# ---------------------------------------------------------------- contents
def make_content(path: str, version: int) -> bytes:
    """The bytes of ``path`` at ``version``: deterministic, self-describing, checksummed."""
    rnd = random.Random(f"{path}:{version}")
    size = rnd.choice(SIZES)
    binary = path.endswith(".bin")
    pool = BIN_POOL if binary else TEXT_POOL
    start = rnd.randrange(len(pool) - size)
    payload = pool[start:start + size]
    head = {"path": path, "version": version, "sha256": hashlib.sha256(payload).hexdigest()}
    if path.endswith("metadata.json") or path.startswith("sessions/tomb-"):
        # real JSON, so the session index reads it in the commit transaction
        return orjson.dumps({**head, "id": path.split("/")[1], "status": "active", "version": version,
                             "payload": payload.decode()})
    return orjson.dumps(head) + b"\n" + payload


def parse_content(path: str, data: bytes) -> int:
    """The version ``data`` is, after checking it is exactly a complete version of ``path``."""
    if path.endswith("metadata.json") or path.startswith("sessions/tomb-"):
        doc = orjson.loads(data)
        payload = doc["payload"].encode()
    else:
        head, sep, payload = data.partition(b"\n")
        assert sep, f"{path}: no header line (torn?) in {len(data)} bytes"
        doc = orjson.loads(head)
    assert doc["path"] == path, f"{path}: holds the content of {doc['path']} (mixed)"
    assert hashlib.sha256(payload).hexdigest() == doc["sha256"], f"{path}: payload checksum fails (torn)"
    version = doc["version"]
    assert data == make_content(path, version), f"{path}: not exactly version {version}"
    return version


# ---------------------------------------------------------------- the child
HOOKS = ("pack-sync", "in-txn", "after-commit", "submit-overlay", "mid-write")


def _install_hook(name: str, nth: int, conn) -> None:
    """Make the ``nth`` call of the hooked function announce itself on ``conn`` and pause."""
    calls = [0]

    def wrap(orig, only=None):
        def hooked(*args, **kwargs):
            if only is None or only(*args):
                calls[0] += 1
                if calls[0] == nth:
                    conn.send_bytes(b"H")
                    time.sleep(0.1)          # the parent kills us in here
            return orig(*args, **kwargs)
        return hooked

    if name == "pack-sync":          # packs appended, not yet synced, catalog knows nothing
        Packer.prepare_commit = wrap(Packer.prepare_commit)
    elif name == "in-txn":           # inside the catalog transaction of a batch (or a replay)
        EngineStore._set_content = wrap(EngineStore._set_content)
    elif name == "after-commit":     # committed; staging files and pending entries not cleaned yet
        EngineStore._after_commit = wrap(EngineStore._after_commit)
    elif name == "submit-overlay":   # sealed (marker written), not yet queued
        Persister.submit = wrap(Persister.submit, lambda self, item: isinstance(item, Overlay))
    elif name == "mid-write":        # half way through rewriting a file with the inode API
        Overlay.write = wrap(Overlay.write)


def _group_version(store: Store, group: str) -> int:
    if store.exists(tomb(group)):
        return parse_content(tomb(group), store.read_path(tomb(group)))
    first = GROUPS[group][0]
    return parse_content(first, store.read_path(first)) if store.exists(first) else 0


def child_main(root: str, cfg: dict, report_path: str, hook_conn) -> None:
    rep = os.open(report_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def report(**event) -> None:
        os.write(rep, orjson.dumps(event) + b"\n")     # one write(2): never torn by SIGKILL

    try:
        rnd = random.Random(cfg["seed"])
        if cfg["hook"]:
            _install_hook(cfg["hook"], cfg["hook_n"], hook_conn)
        # small packs in some rounds: new packs are started (and orphaned by kills) often
        packs = local_packer(Path(root), target_size=cfg["pack_size"]) if cfg.get("pack_size") else None
        store = Store.open(root, sync_interval=0.2, packs=packs)
        versions = {g: _group_version(store, g) for g in GROUPS}
        if not store.exists(INODE_DIR):
            store.write_files({f"{INODE_DIR}/.keep": b""})
            store.settle()
        parent = store.resolve(INODE_DIR)
        inodes = {}
        for name in INODE_FILES:
            ino = store.resolve(f"{INODE_DIR}/{name}")
            if ino is None:
                ino = store.make_node(parent, name.encode(), stat.S_IFREG | 0o644, os.getuid(), os.getgid()).id
            data = store.read_all(ino)
            inodes[name] = [ino, parse_content(f"{INODE_DIR}/{name}", data) if data else 0]
        report(event="ready", versions=versions, inodes={n: v for n, (_, v) in inodes.items()})
        while True:
            op = rnd.random()
            if op < 0.5:
                group = rnd.choice(list(GROUPS))
                v = versions[group] + 1
                if v > 1 and rnd.random() < 0.2:
                    writes = {p: None for p in GROUPS[group]}
                    writes[tomb(group)] = make_content(tomb(group), v)
                else:
                    writes = {p: make_content(p, v) for p in GROUPS[group]}
                    writes[tomb(group)] = None
                store.write_files(writes)
                versions[group] = v
                report(event="queued", group=group, version=v)
            elif op < 0.85:
                name = rnd.choice(INODE_FILES)
                ino, v = inodes[name]
                v += 1
                data = make_content(f"{INODE_DIR}/{name}", v)
                pieces = []
                pos = 0
                while pos < len(data):
                    n = rnd.choice([1, 100, 4096, 65536, 131072])
                    pieces.append((pos, data[pos:pos + n]))
                    pos += n
                how = rnd.randrange(3)
                if how == 0:                       # O_TRUNC then sequential writes
                    store.truncate(ino, 0)
                elif how == 2:                     # pieces in any order
                    rnd.shuffle(pieces)
                for off, piece in pieces:
                    store.write(ino, off, piece)
                if how != 0:
                    store.truncate(ino, len(data))
                store.seal(ino)                    # close(2)
                inodes[name][1] = v
                report(event="sealed", file=name, version=v)
                if rnd.random() < 0.25:
                    store.fsync(ino)
                    report(event="fsync", file=name, version=v)
            else:
                snap = dict(versions)
                store.flush()
                report(event="flush", versions=snap)
    except BaseException:  # noqa: BLE001 - report anything, the parent fails the test with it
        report(event="error", traceback=traceback.format_exc())
        os._exit(1)


# ---------------------------------------------------------------- the parent's checks
def read_report(path: Path) -> list[dict]:
    events = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                pass
    return events


def check_consistency(store: Store) -> None:
    assert_catalog_consistent(store)
    db = store.catalog.reader()
    # every chunk a file uses: its block and pack exist and its bytes hash right (read directly)
    blocks = sql(db).execute(
        "SELECT DISTINCT b.id, b.pack_id, b.offset, b.length, b.raw_length, p.size FROM file_chunks f "
        "JOIN chunks c ON c.id = f.chunk_id LEFT JOIN blocks b ON b.id = c.block_id "
        "LEFT JOIN packs p ON p.id = b.pack_id").fetchall()
    for block_id, pack_id, offset, length, raw_length, pack_size in blocks:
        assert block_id is not None, "a referenced chunk has no block"
        assert pack_size is not None, f"block {block_id} is in pack {pack_id}, which has no row"
        assert offset + length <= pack_size
        path = pack_file(store.root, pack_id)
        with open(path, "rb") as f:
            f.seek(offset)
            framed = f.read(length)
        raw = codec.decode_block(framed, f"block {block_id}")
        assert len(raw) == raw_length
        for chunk_id, digest, off, n in sql(db).execute(
                "SELECT id, hash, block_off, length FROM chunks WHERE block_id = ?", (block_id,)):
            assert hashlib.sha256(raw[off:off + n]).digest() == bytes(digest), f"chunk {chunk_id} is corrupt"
    for pack_id, size in sql(db).execute("SELECT id, size FROM packs"):
        on_disk = store.packs.size(pack_id)
        assert on_disk is not None and on_disk == size, f"pack {pack_id}: {on_disk} bytes on disk, catalog {size}"
    assert sorted(store.packs.sizes()) == sorted(r[0] for r in sql(db).execute("SELECT id FROM packs"))
    # every file reads in full through the store (which verifies every chunk)
    for ino, size in sql(db).execute("SELECT id, size FROM inodes WHERE mode & 61440 = 32768").fetchall():
        assert len(store.read(ino, 0, size)) == size


def verify(root: Path, floors: dict, events: list[dict]) -> dict:
    """Reopen, check everything; returns the versions seen (the floors of the next round)."""
    for e in events:
        assert e["event"] != "error", "the child failed by itself:\n" + e["traceback"]
    need = dict(floors)
    for e in events:
        if e["event"] == "flush":
            for g, v in e["versions"].items():
                need[g] = max(need[g], v)
        elif e["event"] in ("sealed", "fsync"):
            need[e["file"]] = max(need[e["file"]], e["version"])
    store = Store.open(root)           # must succeed by itself
    try:
        assert os.listdir(root / "staging") == [], "staged files left after open"
        seen = {}
        for g, files in GROUPS.items():
            present = [p for p in files if store.exists(p)]
            if store.exists(tomb(g)):
                assert present == [], f"group {g}: deleted at some version yet {present} exist (not atomic)"
                seen[g] = parse_content(tomb(g), store.read_path(tomb(g)))
            elif not present:
                seen[g] = 0
            else:
                assert present == files, f"group {g}: only {present} of {files} exist (not atomic)"
                versions = {p: parse_content(p, store.read_path(p)) for p in files}
                assert len(set(versions.values())) == 1, f"group {g} is mixed: {versions}"
                seen[g] = versions[files[0]]
            assert seen[g] >= need[g], f"group {g}: version {seen[g]} after the crash, {need[g]} was flushed"
        for name in INODE_FILES:
            path = f"{INODE_DIR}/{name}"
            if not store.exists(path):
                seen[name] = 0
            else:
                data = store.read_path(path)
                seen[name] = parse_content(path, data) if data else 0
            assert seen[name] >= need[name], \
                f"{path}: version {seen[name]} after the crash, {need[name]} was sealed/fsynced before it"
        check_consistency(store)
    finally:
        store.close()
    return seen


def mp_context():
    """Children are forked from a clean, single-threaded fork server (with the store and this
    module imported), not from the pytest process, whose other tests may have left threads."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def run_round(root: Path, tmp: Path, index: int, cfg: dict, floors: dict, rnd: random.Random) -> tuple[dict, dict]:
    ctx = mp_context()
    report = tmp / f"report-{index}.log"
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_main, args=(str(root), cfg, str(report), send), daemon=True)
    proc.start()
    send.close()
    try:
        if cfg["hook"]:
            hit = recv.poll(10)
            time.sleep(rnd.uniform(0, 0.04))
        else:
            hit = None
            time.sleep(cfg["delay"])
        alive = proc.is_alive()
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    finally:
        recv.close()
    events = read_report(report)
    info = {"hit": hit, "alive": alive, "events": len(events),
            "ops": sum(e["event"] != "ready" for e in events)}
    return verify(root, floors, events), info


def test_sigkill_at_random_points_never_tears_or_loses_flushed_data(tmp_path):
    root = tmp_path / "store"
    Store.init(root)
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "20240611")))
    floors = {**{g: 0 for g in GROUPS}, **{n: 0 for n in INODE_FILES}}
    plan = [{"hook": None, "delay": rnd.uniform(0, 0.3)} for _ in range(45)]
    plan += [{"hook": HOOKS[i % len(HOOKS)], "hook_n": rnd.randint(1, 8)} for i in range(30)]
    rnd.shuffle(plan)
    # Up to 75 kill points; on a loaded machine stop early once the time budget is spent
    # (never before 36 kills, more than the 30 this test promises).
    budget = float(os.environ.get("CRASH_BUDGET_S", "25"))
    started = time.monotonic()
    infos = []
    for i, cfg in enumerate(plan):
        kills = sum(1 for _, info in infos if info["alive"])
        if time.monotonic() - started > budget and kills >= 36:
            break
        cfg["seed"] = rnd.getrandbits(32)
        cfg["pack_size"] = rnd.choice([None, 300_000])
        try:
            floors, info = run_round(root, tmp_path, i, cfg, floors, rnd)
        except AssertionError as exc:
            raise AssertionError(f"after kill {i} ({cfg}): {exc}") from exc
        infos.append((cfg.get("hook"), info))
    kills = sum(1 for _, info in infos if info["alive"])
    hooked = sum(1 for hook, info in infos if hook and info["hit"] and info["alive"])
    print(f"{kills} kills ({hooked} on a commit hook) in {time.monotonic() - started:.1f}s; versions {floors}")
    assert kills >= 30, infos
    assert hooked >= 0.3 * len(infos), f"only {hooked} kills landed on a commit hook: {infos}"
    # the children did real work across rounds
    assert sum(info["ops"] for _, info in infos) > 2 * len(infos), infos
    assert sum(v for v in floors.values()) > len(infos), floors
    with Store.open(root) as store:                      # the small-pack rounds made many packs
        assert store.statistics().packs > 3


def test_flushed_and_fsynced_data_survives_kill_right_after(tmp_path):
    """Kill immediately after the report of a flush/fsync: it must all be there, exactly."""
    root = tmp_path / "store"
    Store.init(root)
    floors = {**{g: 0 for g in GROUPS}, **{n: 0 for n in INODE_FILES}}
    for i in range(4):
        report = tmp_path / f"r{i}.log"
        proc = mp_context().Process(target=child_main, args=(str(root), {"seed": i, "hook": None}, str(report),
                                                            None), daemon=True)
        proc.start()
        deadline = time.monotonic() + 10
        # wait for the first flush report, then kill at once
        while time.monotonic() < deadline:
            if any(e["event"] == "flush" for e in read_report(report)):
                break
            if not proc.is_alive():
                break
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        events = read_report(report)
        assert any(e["event"] == "flush" for e in events) or any(e["event"] == "error" for e in events)
        floors = verify(root, floors, events)
    assert sum(floors.values()) > 0


def _write_into_damage_then_die(root: str, ino: int, offset: int) -> None:
    try:
        def die(self, item):
            if isinstance(item, Overlay):
                os.kill(os.getpid(), signal.SIGKILL)      # sealed, never committed
            return orig(self, item)

        orig = Persister.submit
        Persister.submit = die
        store = Store.open(root)
        store.write(ino, offset, b"XXXX")
        store.seal(ino)
    finally:
        os._exit(3)


def test_open_succeeds_when_a_staged_write_cannot_be_replayed(tmp_path):
    """A sealed write into damaged data, then a crash: the next open drops it and says so."""
    root = tmp_path / "store"
    Store.init(root)
    rnd = random.Random(3)
    text = " ".join(rnd.choice(WORDS) for _ in range(30_000)).encode()
    with Store.open(root) as store:
        store.write_files({"sessions/d/a.txt": text, "sessions/d/b.txt": b"untouched"})
        store.flush()
        ino = store.resolve("sessions/d/a.txt")
        db = store.catalog.reader()
        pack_id, offset, length, codec_id = sql(db).execute(
            "SELECT b.pack_id, b.offset, b.length, b.codec FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
            "JOIN blocks b ON b.id = c.block_id WHERE f.ino = ? ORDER BY f.off LIMIT 1", (ino,)).fetchone()
        first_len = sql(db).execute("SELECT c.length FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id "
                               "WHERE f.ino = ? ORDER BY f.off LIMIT 1", (ino,)).fetchone()[0]
    assert codec_id == codec.CODEC_ZSTD
    with open(pack_file(root, pack_id), "r+b") as f:
        pos = offset + codec.HEADER.size + (length - codec.HEADER.size) // 2
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ 0x04]))
    proc = mp_context().Process(
        target=_write_into_damage_then_die, args=(str(root), ino, first_len // 2))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert any(n.endswith(".sealed") for n in os.listdir(root / "staging"))
    store = Store.open(root)                   # must not fail on the unreplayable write
    try:
        assert os.listdir(root / "staging") == []
        assert store.read_path("sessions/d/b.txt") == b"untouched"
        with pytest.raises(Exception) as e:
            store.fsync(ino)                   # the dropped write is reported once
        assert "sessions/d/a.txt" in str(e.value)
        store.fsync(ino)
        store.write_files({"sessions/d/c.txt": b"works"})
        store.flush()
        assert store.read_path("sessions/d/c.txt") == b"works"
        check_consistency_allowing_damage(store)
    finally:
        store.close()


def check_consistency_allowing_damage(store: Store) -> None:
    db = store.catalog.reader()
    total, rows = sql(db).execute("SELECT coalesce(sum(refcount), 0), (SELECT count(*) FROM file_chunks) "
                             "FROM chunks").fetchone()
    assert total == rows
    assert sql(db).execute("SELECT count(*) FROM chunks c LEFT JOIN blocks b ON b.id = c.block_id "
                      "WHERE b.id IS NULL").fetchone()[0] == 0
