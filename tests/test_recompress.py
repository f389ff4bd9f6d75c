"""Background recompression: cold blocks re-encoded at a high level (small text blocks with a
trained, versioned dictionary), oldest first, throttled, paused by foreground I/O, crash-safe.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from contrib.corpus import generate_session
from checks import sigkill_at
from store import Store
from store.core import codec
from store.services import gc as gcmod
from store.services import switch_over
from store.cli.main import main
from store.services.background import maintenance
from store.services.gc import GcOptions, collect
from store.backends.objects.packs import local_packer
from store.services.recompress import (CompressOptions, candidates, compress, pending)
from store.services.sessions import SessionStore
from store.services.verify import verify
from store.backends.catalog.sqlite.view import sql

PACK_SIZE = 256 * 1024
CRASH_ROUNDS = int(os.environ.get("SESSIONFS_COMPRESS_CRASH_ROUNDS", "24"))


def open_store(root: Path, **kw) -> Store:
    if not (root / "catalog.db").exists():
        Store.init(root)
    return Store.open(root, packs=local_packer(root, PACK_SIZE), **kw)


def save_sessions(store: Store, indices, attachments: bool = True) -> None:
    ss = SessionStore(store)
    for i in indices:
        session, files = generate_session(3, i, profile="small", attachments=attachments)
        ss.save_full_session(session)
        for name, data in files.items():
            aid, ext = name.rsplit(".", 1)
            ss.save_attachment(session["id"], aid, ext, data)
    store.flush()


def file_hashes(store: Store) -> dict[str, str]:
    return {store.catalog.path_of(ino): hashlib.sha256(store.read_all(ino)).hexdigest()
            for (ino,) in sql(store.catalog.reader()).execute(
                "SELECT id FROM inodes WHERE mode & 61440 = 32768").fetchall()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress") / "store"
    store = open_store(root)
    save_sessions(store, range(6))
    hashes = file_hashes(store)
    store.close()
    return root, hashes


@pytest.fixture
def copy(base, tmp_path):
    src, hashes = base
    shutil.copytree(src, tmp_path / "store")
    return tmp_path / "store", hashes


def clean(store: Store) -> None:
    report = verify(store, data=True)
    assert not report.problems, [p.line() for p in report.problems]


def test_offline_compress_shrinks_and_reads_identical(copy, capsys):
    root, hashes = copy
    with open_store(root) as store:
        before = store.statistics()
        assert before.maintenance.recompressed_blocks == 0 and before.maintenance.blocks_pending > 0
        result = compress(store, CompressOptions(cold_age=0))
        assert result.blocks == before.maintenance.blocks_pending
        assert 0 < result.recompressed <= result.blocks and result.bytes_after < result.bytes_before
        assert result.dictionaries_trained == 0       # 6 metadata.json files: too few to pay for one
        collect(store, GcOptions(grace=0))                 # old frames in shared packs
        after = store.statistics()
        m = after.maintenance
        assert 0 < m.recompressed_blocks <= result.blocks and m.blocks_pending == 0   # merges: fewer
        assert m.recompress_bytes_after < m.recompress_bytes_before
        assert after.stored_bytes + m.dictionary_bytes < before.stored_bytes
        db = store.catalog.reader()
        owners = sql(db).execute("SELECT c.block_id, count(DISTINCT f.ino), max(d.name = ?) FROM chunks c "
                            "JOIN file_chunks f ON f.chunk_id = c.id JOIN dentries d ON d.ino = f.ino "
                            "GROUP BY c.block_id", (b"metadata.json",)).fetchall()
        assert any(n > 1 for _, n, _ in owners)             # a session's small files merged
        assert all(n == 1 for _, n, meta in owners if meta)  # metadata.json keeps its own block
        assert file_hashes(store) == hashes
        clean(store)
        again = compress(store, CompressOptions(cold_age=0))
        assert again.blocks == 0 and again.dictionaries_trained == 0
        assert "maintenance" in store.statistics().as_dict()
    store = Store.open(root, readonly=True)                # a fresh process decodes every block
    try:
        assert file_hashes(store) == hashes
    finally:
        store.close()
    assert main(["stats", str(root), "--json"]) == 0
    assert '"recompressed_blocks"' in capsys.readouterr().out


def test_cold_age_and_oldest_first(copy):
    root, _ = copy
    with open_store(root) as store:
        assert compress(store, CompressOptions(cold_age=3600)).blocks == 0
        db = store.catalog.reader()
        ids = [r[0] for r in sql(db).execute("SELECT id FROM blocks ORDER BY id")]
        # Make the newest blocks the oldest: they must come first.
        now = time.time_ns()
        with store.catalog.write() as wdb:
            for age, bid in enumerate(ids):
                sql(wdb).execute("UPDATE blocks SET created = ? WHERE id = ?", (now - (age + 1) * 100 * 10**9, bid))
        rows = candidates(store.catalog.reader(), 0, 5)
        assert [r[1] for r in rows] == ids[::-1][:5]
        # Only blocks at least cold_age old: here all but the two written "last".
        assert {r[1] for r in candidates(store.catalog.reader(), 250, 10_000)} == set(ids[2:])
        result = compress(store, CompressOptions(cold_age=250))
        assert result.blocks == len(ids) - 2


def test_dictionary_versions_all_decode(tmp_path):
    """Without merging every small JSON file uses the dictionary (with merging, only
    metadata.json does, from some dozens of sessions on: same code)."""
    root = tmp_path / "store"
    store = open_store(root)
    options = CompressOptions(cold_age=0, merge=False)
    try:
        save_sessions(store, range(3), attachments=False)
        result = compress(store, options)
        assert result.dictionaries_trained == 1
        first = store.dictionaries.latest_info()
        m = store.statistics().maintenance
        assert m.dictionaries == 1 and m.dictionary_bytes > 0
        save_sessions(store, range(3, 9), attachments=False)     # 3x the small blocks: a new version
        result = compress(store, options)
        assert result.dictionaries_trained == 1
        db = store.catalog.reader()
        used = {r[0] for r in sql(db).execute("SELECT DISTINCT dict_id FROM blocks WHERE codec = ?",
                                         (codec.CODEC_ZSTD_DICT,))}
        assert used == {first[0], first[0] + 1}
        hashes = file_hashes(store)
        clean(store)
        # gc keeps a dictionary while a block uses it, and the newest always.
        collect(store, GcOptions(grace=0))
        assert {r[0] for r in sql(db).execute("SELECT id FROM dictionaries")} == used
    finally:
        store.close()
    with Store.open(root, readonly=True) as store:
        assert file_hashes(store) == hashes
    # Deleting the sessions that used the first dictionary lets gc drop it.
    with open_store(root) as store:
        ss = SessionStore(store)
        for sid in [r[0] for r in sql(store.catalog.reader()).execute("SELECT id FROM sessions")]:
            ss.delete_session(sid)
        store.flush()
        collect(store, GcOptions(grace=0))
        assert [r[0] for r in sql(store.catalog.reader()).execute("SELECT id FROM dictionaries")] == [first[0] + 1]
        clean(store)


def thread_cpu_seconds(tid: int) -> float:
    """User + system CPU time of one thread of this process (/proc/self/task/<tid>/stat)."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_background_compressor_throttled_and_paused(copy):
    share = 0.1
    root, hashes = copy
    # Seconds of level-19 work, so that an unthrottled compressor would stand out of the slack.
    words = random.Random(5).choices(["session", "screen", "audio", "note", "the", "a", "frame", "42"], k=150_000)
    with open_store(root) as store:
        store.write_files({f"sessions/bulk/part{i}.txt": " ".join(words[i::4]).encode() for i in range(4)})
        store.flush()
        hashes = file_hashes(store)
    with open_store(root, maintenance=maintenance(compress=True, cold_age=0.0, cpu_share=share)) as store:
        comp = store.background.compressor
        comp.poll = 0.1
        comp.options.quiet = 0.3
        # Foreground reads every 50 ms: the compressor stays paused.
        stop = threading.Event()
        paths = sorted(hashes)

        def reader():
            while not stop.is_set():
                store.read_path(random.choice(paths))
                time.sleep(0.05)
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(1.0)
        handled_while_busy = comp.result.blocks
        state = comp.state
        stop.set()
        t.join()
        assert handled_while_busy == 0 and state == "paused"
        # Judged by the kernel's count of the compressor thread's CPU time against the wall
        # clock, not by the throttle's own bookkeeping (busy_seconds).
        tid = comp._thread.native_id
        cpu0, start = thread_cpu_seconds(tid), time.monotonic()
        deadline = start + 300
        while pending(store.catalog.reader(), 0)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu, wall = thread_cpu_seconds(tid) - cpu0, time.monotonic() - start
        assert not pending(store.catalog.reader(), 0)[0]
        stats = store.statistics().maintenance.background["compressor"]
        assert stats["blocks"] > 0 and stats["recompressed"] > 0
        print(f"\ncompressor thread: {cpu:.2f} s CPU in {wall:.2f} s, share {share}")
        # At most its share of one core (slack: clock ticks and the last unit before its pause).
        # A small share keeps an unthrottled compressor (0.4 or more here) far above the bound.
        assert cpu <= wall * share + 0.1, (cpu, wall)
        assert file_hashes(store) == hashes
    with open_store(root) as store:
        clean(store)


def test_compress_command(copy, capsys):
    root, hashes = copy
    with Store.open(root):
        assert main(["compress", str(root)]) == 1
        assert "in use" in capsys.readouterr().err
    assert main(["compress", str(root), "--level", "12"]) == 0
    out = capsys.readouterr().out
    assert "re-encoded" in out and "->" in out
    with Store.open(root, readonly=True) as store:
        assert file_hashes(store) == hashes
        levels = {r[0] for r in sql(store.catalog.reader()).execute("SELECT level FROM recompressed")}
        assert levels == {12}


# -- crashes -----------------------------------------------------------------------------------
POINTS = ("appended", "synced", "committed", "deleted")


def _child(root: str, point: str | None, nth: int, pipe) -> None:
    switch_over._hook = sigkill_at(point, nth)
    import store.services.recompress as rc
    rc.BATCH_BLOCKS = 8                     # many small switch-overs
    store = open_store(Path(root))
    os.write(pipe, b"s")
    compress(store, CompressOptions(cold_age=0, level=9), threads=2)     # level: test speed only
    collect(store, GcOptions(grace=0, step_bytes=64 * 1024))
    store.close()
    os.write(pipe, b"d")


def test_sigkill_during_compression(base, tmp_path):
    src, hashes = base
    rng = random.Random(9)
    ctx = multiprocessing.get_context("fork")
    plans = [(p, n) for n in (1, 2, 4, 7) for p in POINTS]
    plans += [(None, 0)] * max(0, CRASH_ROUNDS - len(plans))
    killed = 0
    for round_no, (point, nth) in enumerate(plans):
        root = tmp_path / f"r{round_no}"
        shutil.copytree(src, root)
        r, w = os.pipe()
        child = ctx.Process(target=_child, args=(str(root), point, nth, w))
        child.start()
        os.close(w)
        assert os.read(r, 1) == b"s"
        if point is None:
            time.sleep(rng.uniform(0, 0.4))
            os.kill(child.pid, signal.SIGKILL)
        child.join(60)
        killed += os.read(r, 1) != b"d"
        os.close(r)
        with open_store(root) as store:
            assert file_hashes(store) == hashes, f"round {round_no} ({point} #{nth})"
            clean(store)
            if round_no % 5 == 0:                 # and it carries on where it stopped
                compress(store, CompressOptions(cold_age=0))
                assert not pending(store.catalog.reader(), None)[0]
                assert file_hashes(store) == hashes
        shutil.rmtree(root)
    print(f"compression crash rounds: {len(plans)}, killed {killed}")
    assert killed >= len(POINTS) * 3


def test_reads_racing_with_moves_never_fail(copy):
    """Readers in other threads while blocks move and old packs are deleted: every read
    returns the right bytes (a read that raced with a move retries on the new locations)."""
    root, hashes = copy
    with open_store(root, cache_bytes=32 * 1024) as store:   # tiny cache: reads go to the packs
        ss = SessionStore(store)
        sid = sql(store.catalog.reader()).execute("SELECT id FROM sessions LIMIT 1").fetchone()[0]
        ss.delete_session(sid)
        store.flush()
        expected = {p: h for p, h in hashes.items() if not p.startswith(f"sessions/{sid}/")}
        paths = sorted(expected)
        stop = threading.Event()
        errors, reads = [], [0]

        def reader(seed):
            rnd = random.Random(seed)
            while not stop.is_set():
                path = rnd.choice(paths)
                try:
                    data = store.read_path(path)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{path}: {exc!r}")
                    continue
                if hashlib.sha256(data).hexdigest() != expected[path]:
                    errors.append(f"{path}: wrong bytes")
                reads[0] += 1
                time.sleep(0.002)
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            compress(store, CompressOptions(cold_age=0), threads=1)
            collect(store, GcOptions(grace=0, step_bytes=32 * 1024))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:5]
        assert reads[0] > 20
        clean(store)
