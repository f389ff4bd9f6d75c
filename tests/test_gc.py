"""Garbage collection and pack compaction: space comes back, bytes stay identical, and a
SIGKILL at any point of gc leaves a store that reopens, reads byte-identical and verifies
clean.

The corpus: generated small-profile sessions (JSON files and PNG/WAV attachments) saved
through the session API; every other session is then deleted, so dead data is spread
over every pack (the hard case for compaction).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from contrib.corpus import generate_session
from checks import sigkill_at
from store import Store
from store.services import gc as gcmod
from store.services import switch_over
from store.cli.main import main
from store.services.gc import BackgroundGC, GcOptions, collect
from store.backends.objects.packs import local_packer
from store.services.sessions import SessionStore
from store.services.verify import verify
from store.backends.catalog.sqlite.view import sql

SESSIONS = 10
SMALL_PACKS = 128 * 1024
CRASH_ROUNDS = int(os.environ.get("SESSIONFS_GC_CRASH_ROUNDS", "36"))


def save_sessions(store: Store, indices) -> list[str]:
    ss = SessionStore(store)
    ids = []
    for i in indices:
        session, files = generate_session(5, i, profile="small")
        ss.save_full_session(session)
        for name, data in files.items():
            aid, ext = name.rsplit(".", 1)
            ss.save_attachment(session["id"], aid, ext, data)
        ids.append(session["id"])
    store.flush()
    return ids


def open_store(root: Path, pack_size: int | None, **kw) -> Store:
    if not (root / "catalog.db").exists():
        Store.init(root)
    packs = local_packer(root, pack_size) if pack_size else None
    return Store.open(root, packs=packs, **kw)


def file_hashes(store: Store) -> dict[str, str]:
    out = {}
    for (ino,) in sql(store.catalog.reader()).execute("SELECT id FROM inodes WHERE mode & 61440 = 32768").fetchall():
        out[store.catalog.path_of(ino)] = hashlib.sha256(store.read_all(ino)).hexdigest()
    return out


def build_half_deleted(root: Path, pack_size: int | None) -> dict[str, str]:
    store = open_store(root, pack_size)
    ids = save_sessions(store, range(SESSIONS))
    ss = SessionStore(store)
    for sid in ids[::2]:
        ss.delete_session(sid)
    store.flush()
    hashes = file_hashes(store)
    store.close()
    return hashes


@pytest.fixture(scope="module")
def half_deleted(tmp_path_factory):
    """{pack size: (store root with every other session deleted, file hashes)}."""
    base = tmp_path_factory.mktemp("gc")
    return {size: (base / f"store-{size}", build_half_deleted(base / f"store-{size}", size))
            for size in (None, SMALL_PACKS)}


@pytest.fixture(scope="module")
def fresh_size(tmp_path_factory) -> int:
    """Stored bytes of a fresh store holding only the sessions that were kept."""
    root = tmp_path_factory.mktemp("fresh") / "store"
    store = open_store(root, None)
    save_sessions(store, range(1, SESSIONS, 2))
    size = store.statistics().stored_bytes
    store.close()
    return size


@pytest.mark.parametrize("pack_size", [None, SMALL_PACKS], ids=["one-pack", "many-packs"])
def test_gc_after_deleting_half_matches_a_fresh_store(half_deleted, fresh_size, tmp_path, pack_size):
    src, hashes = half_deleted[pack_size]
    root = tmp_path / "store"
    shutil.copytree(src, root)
    with open_store(root, pack_size) as store:
        before = store.statistics().stored_bytes
        dry = collect(store, GcOptions(grace=0), dry_run=True)
        assert store.statistics().stored_bytes == before           # a dry run changes nothing
        assert dry.chunks_reclaimed > 0 and dry.compaction_plan
        # Inside the grace period nothing is reclaimed.
        assert collect(store, GcOptions()).chunks_reclaimed == 0
        result = collect(store, GcOptions(grace=0))
        after = store.statistics().stored_bytes
        assert result.chunks_reclaimed == dry.chunks_reclaimed
        assert result.stored_after == after < before
        assert after <= fresh_size * 1.10, (after, fresh_size)
        assert file_hashes(store) == hashes
        report = verify(store, data=True)
        assert not report.problems, [p.line() for p in report.problems]
        again = collect(store, GcOptions(grace=0))                  # nothing left to do: no churn
        assert again.chunks_reclaimed == 0 and again.bytes_copied == 0
    assert sorted(p.name for p in (root / "packs").iterdir()) == \
        [f"{pid:08d}.pack" for pid in sorted(int(p.name[:8]) for p in (root / "packs").iterdir())]
    with Store.open(root, readonly=True) as store:                  # reopened: still identical
        assert file_hashes(store) == hashes


def test_gc_command(half_deleted, tmp_path, capsys):
    src, hashes = half_deleted[SMALL_PACKS]
    root = tmp_path / "store"
    shutil.copytree(src, root)
    assert main(["gc", str(root), "--dry-run", "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert "would reclaim" in out and "would compact" in out
    with Store.open(root):                                          # mounted: refused, --dry-run works
        assert main(["gc", str(root), "--grace", "0"]) == 1
        assert "in use" in capsys.readouterr().err
        assert main(["gc", str(root), "--dry-run"]) == 0
        capsys.readouterr()
    assert main(["gc", str(root), "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert "reclaimed" in out and "compacted" in out and "->" in out
    with Store.open(root, readonly=True) as store:
        assert file_hashes(store) == hashes


def test_background_gc_runs_when_idle(half_deleted, tmp_path):
    src, hashes = half_deleted[SMALL_PACKS]
    root = tmp_path / "store"
    shutil.copytree(src, root)
    with open_store(root, SMALL_PACKS) as store:
        before = store.statistics().stored_bytes
        bg = BackgroundGC(store, GcOptions(grace=0), interval=3600, quiet=0.05)
        store.persister.wake_idle_task(bg.task)
        for i in range(10):
            # Foreground writes go on meanwhile; gc steps run in the pauses between them.
            store.write_files({f"sessions/extra/note{i}.txt": os.urandom(2000)})
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while bg.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        bg.stop()
        assert bg.passes >= 1
        store.flush()
        assert store.statistics().stored_bytes < before * 0.75
        now = file_hashes(store)
        assert {k: v for k, v in now.items() if not k.startswith("sessions/extra/")} == hashes
        # Dead bytes as the pack files on disk and the live blocks tell them, not as gc counts them.
        on_disk = sum(store.packs.sizes().values())
        live = sql(store.catalog.reader()).execute("SELECT coalesce(sum(length), 0) FROM blocks").fetchone()[0]
        assert store.statistics().maintenance.dead_pack_bytes == on_disk - live
        report = verify(store, data=True)
        assert not report.problems, [p.line() for p in report.problems]


# -- crashes -------------------------------------------------------------------------------------
POINTS = ("appended", "synced", "committed", "deleted")


def _child(root: str, point: str | None, nth: int, pipe) -> None:
    """Run a gc in small steps; SIGKILL ourselves at the nth passage of ``point``."""
    switch_over._hook = sigkill_at(point, nth)
    store = open_store(Path(root), SMALL_PACKS)
    os.write(pipe, b"s")
    collect(store, GcOptions(grace=0, step_bytes=48 * 1024))
    store.close()
    os.write(pipe, b"d")


def test_sigkill_during_gc_and_compaction(half_deleted, tmp_path):
    src, hashes = half_deleted[SMALL_PACKS]
    rng = random.Random(4)
    ctx = multiprocessing.get_context("fork")
    plans = [(p, n) for n in (1, 2, 3, 5, 8) for p in POINTS]
    plans += [(None, 0)] * max(0, CRASH_ROUNDS - len(plans))
    killed = completed = 0
    for round_no, (point, nth) in enumerate(plans):
        root = tmp_path / f"r{round_no}"
        shutil.copytree(src, root)
        r, w = os.pipe()
        child = ctx.Process(target=_child, args=(str(root), point, nth, w))
        child.start()
        os.close(w)
        assert os.read(r, 1) == b"s"
        if point is None:                                   # a random moment instead of a chosen step
            time.sleep(rng.uniform(0, 0.12))
            os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        done = os.read(r, 1) == b"d"
        os.close(r)
        killed += not done
        completed += done
        with open_store(root, SMALL_PACKS) as store:        # reopens on its own: recovery
            assert file_hashes(store) == hashes, f"round {round_no} ({point} #{nth})"
            report = verify(store, data=True)
            assert not report.problems, (round_no, point, nth, [p.line() for p in report.problems])
            if round_no % 4 == 0:                           # gc goes on after the crash
                collect(store, GcOptions(grace=0))
                assert file_hashes(store) == hashes
        assert not [n for n in os.listdir(root / "staging")]
        shutil.rmtree(root)
    print(f"gc crash rounds: {len(plans)}, killed {killed}, completed {completed}")
    assert killed >= len(POINTS) * 3, (killed, completed)   # most chosen steps were reached


def test_read_racing_with_compaction_retries(half_deleted, tmp_path):
    """A read that fetched a block's location just before compaction moved the block and
    deleted its pack fails on the old location, notices the move and reads again: right bytes,
    no error, and nothing wrong left in the cache."""
    src, hashes = half_deleted[SMALL_PACKS]
    root = tmp_path / "store"
    shutil.copytree(src, root)
    with open_store(root, SMALL_PACKS, cache_bytes=0) as store:
        collector = gcmod.Collector(store, GcOptions(grace=0))
        store.run_in_worker(collector.reclaim_step)
        path = sorted(p for p in hashes if p.endswith("summary.json"))[0]
        ino = store.resolve(path)
        loc = store.catalog.locations(ino, 0, 1, 1 << 20)[0]
        pack_id = store.catalog.block(loc.block_id).pack_id
        real_locations = store.catalog.locations
        moved = []

        def locations_then_move(of, start, end, max_chunk, view=None):
            found = real_locations(of, start, end, max_chunk, view)
            if of == ino and not moved:
                assert any(f.block == store.catalog.block(loc.block_id) for f in found)
                moved.append(pack_id)           # the reader holds the old locations (and block rows) now
                while store.run_in_worker(lambda: collector.compact_step(pack_id)):
                    pass
            return found
        store.catalog.locations = locations_then_move
        try:
            data = store.read_path(path)
        finally:
            store.catalog.locations = real_locations
        assert moved == [pack_id] and store.packs.size(pack_id) is None     # really gone
        assert hashlib.sha256(data).hexdigest() == hashes[path]
        assert file_hashes(store) == hashes
