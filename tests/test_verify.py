"""``sessionfs verify``: each injected fault is named by its own message, ``--repair`` fixes
what it claims to, and a second verify is clean.

One small store (two generated sessions with attachments, packs of 64 KiB so that there
are several) is built once; each test works on a copy.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from contrib.corpus import generate_session
from checks import pack_file, pack_files
from store import Store
from store.cli.main import main
from store.core.errors import CatalogError, IntegrityError
from store.backends.objects.packs import local_packer
from store.services.sessions import SessionStore
from store.services.verify import verify

PACK_SIZE = 64 * 1024


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify") / "base"
    store = Store.open(root, create=True, packs=local_packer(root, PACK_SIZE))
    ss = SessionStore(store)
    for i in range(2):
        session, files = generate_session(11, i, profile="small")
        ss.save_full_session(session)
        for name, data in files.items():
            aid, ext = name.rsplit(".", 1)
            ss.save_attachment(session["id"], aid, ext, data)
    store.close()
    return root


@pytest.fixture
def copy(base, tmp_path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(base, dst)
    return dst


def contents(root: Path) -> dict[str, bytes | Exception]:
    """Every file's bytes (or the error reading it), by path."""
    out = {}
    inos = [ino for (ino,) in catalog(root).execute("SELECT id FROM inodes WHERE mode & 61440 = 32768")]
    with Store.open(root, readonly=True) as store:
        for ino in inos:
            path = store.catalog.path_of(ino)
            try:
                out[path] = store.read_all(ino)
            except IntegrityError as exc:
                out[path] = exc
    return out


def run(capsys, *argv) -> tuple[int, str]:
    rc = main(["verify", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def catalog(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "catalog.db", isolation_level=None)


def block_of(root: Path, name: str) -> tuple[str, int, int, int, int]:
    """(path, pack id, offset, length, codec) of the first block of the first file called ``name``."""
    with Store.open(root, readonly=True) as store:
        ino, bid, pid, off, length, codec = catalog(root).execute(
            "SELECT f.ino, b.id, b.pack_id, b.offset, b.length, b.codec FROM dentries d "
            "JOIN file_chunks f ON f.ino = d.ino JOIN chunks c ON c.id = f.chunk_id "
            "JOIN blocks b ON b.id = c.block_id WHERE d.name = ? ORDER BY f.off LIMIT 1",
            (name.encode(),)).fetchone()
        return store.catalog.path_of(ino), pid, off, length, codec


# -- faults: (inject(root) -> paths named, kind, verify needs --data) ----------------------------
def flip_bit(root: Path) -> list[str]:
    path, pid, off, length, _ = block_of(root, "summary.json")
    with open(pack_file(root, pid), "r+b") as f:
        f.seek(off + length - 8)
        byte = f.read(1)[0]
        f.seek(off + length - 8)
        f.write(bytes([byte ^ 0x04]))
    return [path]


def truncate_pack(root: Path) -> list[str]:
    path, pid, off, length, _ = block_of(root, "transcription.json")
    os.truncate(pack_file(root, pid), off + length // 2)
    return [path]


def remove_pack(root: Path) -> list[str]:
    path, pid, *_ = block_of(root, "canvas-spec.json")
    os.unlink(pack_file(root, pid))
    return [path]


def wrong_refcount(root: Path) -> list[str]:
    path, *_ = block_of(root, "audio-insights.json")
    db = catalog(root)
    db.execute("UPDATE chunks SET refcount = refcount + 2 WHERE id = (SELECT f.chunk_id FROM file_chunks f "
               "JOIN dentries d ON d.ino = f.ino WHERE d.name = ? LIMIT 1)", (b"audio-insights.json",))
    return [path]


def missing_chunk(root: Path) -> list[str]:
    path, *_ = block_of(root, "context-items.json")
    db = catalog(root)
    db.execute("DELETE FROM chunks WHERE id = (SELECT f.chunk_id FROM file_chunks f "
               "JOIN dentries d ON d.ino = f.ino WHERE d.name = ? LIMIT 1)", (b"context-items.json",))
    return [path]


def orphan_pack(root: Path) -> list[str]:
    ids = sorted(int(p.name[:8]) for p in pack_files(root))
    shutil.copy(pack_file(root, ids[0]), root / "packs" / f"{ids[-1] + 5:08d}.pack")
    return [f"packs/{ids[-1] + 5:08d}"]


def drifted_counters(root: Path) -> list[str]:
    catalog(root).execute("UPDATE counters SET value = value + 12345 WHERE name = 'referenced_bytes'")
    return []


FAULTS = {
    "flipped-bit": (flip_bit, "corrupt-data", True),
    "truncated-pack": (truncate_pack, "pack-truncated", False),
    "missing-pack": (remove_pack, "pack-missing", False),
    "wrong-refcount": (wrong_refcount, "refcount", False),
    "missing-chunk": (missing_chunk, "missing-chunk", False),
    "orphan-pack": (orphan_pack, "orphan-pack", False),
    "drifted-counters": (drifted_counters, "counters", False),
}


def test_clean_store_verifies_clean(base, capsys):
    for args in ([], ["--data"]):
        rc, out = run(capsys, base, *args)
        assert rc == 0, out
        assert "no problems" in out
    with Store.open(base, readonly=True) as store:
        report = verify(store, data=True)
    assert report.ok and not report.problems
    assert report.counts["packs"] > 2 and report.counts["sessions"] == 2


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_named_repaired_and_reverified(copy, capsys, fault):
    inject, kind, data = FAULTS[fault]
    before = contents(copy)
    named = inject(copy)
    flags = ["--data"] if data else []

    rc, out = run(capsys, copy, *flags)
    assert rc == 1, out
    lines = errors(out)
    assert lines and all(f"error: {kind}:" in line for line in lines), out   # its own message, nothing else
    for path in named:
        assert path in out, out

    rc, out = run(capsys, copy, "--repair", *flags)
    assert "repaired:" in out and "after repair:" in out, out
    after_part = out.split("after repair:")[1]
    assert not errors(after_part) and "no problems" in after_part, out
    assert rc == 0, out

    rc, out = run(capsys, copy, "--data")
    assert rc == 0 and "no problems" in out, out

    # Files that lost data stay, are listed in lost+found and fail to read; nothing else changed.
    now = contents(copy)
    assert now.keys() == before.keys()
    lost = {p for p, v in now.items() if isinstance(v, Exception)}
    if kind in ("refcount", "orphan-pack", "counters"):
        assert not lost
    else:
        assert set(named) <= lost
        assert all(p in out for p in lost), out       # "lost+found: <path>" lines
    for path, value in now.items():
        if path not in lost:
            assert value == before[path], path


def test_lost_file_rewritten_leaves_lost_found(copy, capsys):
    (path,) = missing_chunk(copy)
    assert run(capsys, copy, "--repair")[0] == 0
    with Store.open(copy) as store:
        with pytest.raises(IntegrityError):
            store.read_path(path)
        store.write_files({path: b'{"rewritten": true}\n'})
        store.flush()
    rc, out = run(capsys, copy, "--data")
    assert rc == 0 and "lost+found" not in out, out
    assert run(capsys, copy, "--repair")[0] == 0          # prunes the stale entry
    db = catalog(copy)
    assert db.execute("SELECT count(*) FROM lost_found").fetchone()[0] == 0


def test_namespace_and_session_faults(copy, capsys):
    db = catalog(copy)
    sid = db.execute("SELECT id FROM sessions ORDER BY id LIMIT 1").fetchone()[0]
    other = db.execute("SELECT id FROM sessions ORDER BY id DESC LIMIT 1").fetchone()[0]
    sessions_ino = int(db.execute("SELECT value FROM meta WHERE key = 'sessions_ino'").fetchone()[0])
    db.execute("INSERT INTO dentries (parent, name, ino) VALUES (?, ?, 999999)", (sessions_ino, b"ghost"))
    db.execute("UPDATE inodes SET nlink = 7 WHERE id = (SELECT d.ino FROM dentries d WHERE d.name = ? LIMIT 1)",
               (b"summary.json",))
    db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
    db.execute("UPDATE sessions SET status = 'bogus' WHERE id = ?", (other,))
    db.execute("INSERT INTO sessions (id, dir_ino, meta_size) VALUES ('no-such-session', 424242, 1)")
    db.close()
    with Store.open(copy) as store:        # a file the app might write: not JSON, a warning only
        store.write_files({f"sessions/{sid}/summary.json": b"{not json"})
    rc, out = run(capsys, copy, "--data")
    assert rc == 1
    for kind in ("dangling-dentry", "nlink", "session-missing", "session-stale"):
        assert f"error: {kind}:" in out, out
    assert f"warning: invalid-json: sessions/{sid}/summary.json is not valid JSON" in out
    assert "sessions/ghost" in out and "no-such-session" in out
    rc, out = run(capsys, copy, "--repair", "--data")
    assert rc == 0, out
    after = out.split("after repair:")[1]
    assert not errors(after) and "warning: invalid-json" in after    # not repaired: a decision
    db = catalog(copy)
    assert db.execute("SELECT status FROM sessions WHERE id = ?", (other,)).fetchone()[0] != "bogus"
    assert db.execute("SELECT 1 FROM sessions WHERE id = ?", (sid,)).fetchone()


def test_repair_refused_while_mounted(copy, capsys):
    wrong_refcount(copy)
    with Store.open(copy, owner={"mountpoint": "/mnt/x"}):
        rc, out = run(capsys, copy, "--repair")
        assert rc == 1
        assert "refusing to repair" in out and "/mnt/x" in out
        # Plain verify works beside the daemon.
        rc, out = run(capsys, copy)
        assert rc == 1 and "error: refcount:" in out


def test_json_output(copy, capsys):
    import json
    wrong_refcount(copy)
    rc = main(["verify", str(copy), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and not report["ok"]
    assert [p["kind"] for p in report["problems"]] == ["refcount"]
    assert report["problems"][0]["paths"]


def test_a_failing_catalog_is_a_store_error_naming_the_catalog_and_the_check(copy, capsys):
    """A catalog that fails under a check (here a table is gone) raises CatalogError, not
    sqlite3's exception, from plain and from streaming operations; the command prints one line."""
    db = catalog(copy)
    db.execute("DROP TABLE session_topics")
    db.close()
    with Store.open(copy, readonly=True) as store:
        with pytest.raises(CatalogError, match=r"^catalog: indexed sessions failed: "
                                               r"no such table: session_topics$") as caught:
            verify(store)
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        catalog(copy).execute("DROP TABLE blocks")
        stream = store.catalog.reader().audit.blocks()
        with pytest.raises(CatalogError, match=r"^catalog: blocks failed: no such table: blocks$"):
            next(stream)
    rc, out = run(capsys, copy)
    assert rc == 1
    assert re.search(r"^sessionfs: catalog: [\w ]+ failed: no such table: \w+$", out, re.M), out
    assert "Traceback" not in out


def test_marking_a_chunk_lost_keeps_it_for_its_files_and_drops_it_for_none(copy):
    """The Audit contract repair relies on: a referenced chunk becomes lost (and is then no
    damage to report), marking it again changes nothing, an unreferenced one is deleted."""
    db = catalog(copy)
    shared, ino = db.execute("SELECT f.chunk_id, f.ino FROM file_chunks f JOIN dentries d ON d.ino = f.ino "
                             "WHERE d.name = ? ORDER BY f.off LIMIT 1", (b"summary.json",)).fetchone()
    alone, other = db.execute(
        "SELECT f.chunk_id, f.ino FROM file_chunks f JOIN dentries d ON d.ino = f.ino WHERE d.name = ? "
        "AND (SELECT count(*) FROM file_chunks g WHERE g.chunk_id = f.chunk_id) = 1 ORDER BY f.off LIMIT 1",
        (b"transcription.json",)).fetchone()
    with Store.open(copy) as store:
        with store.catalog.write() as txn:
            audit = txn.audit
            refs = audit.mark_chunk_lost(shared)
            assert ino in {r.ino for r in refs} and all(r.length > 0 for r in refs)
            assert audit.mark_chunk_lost(shared) == []
            assert audit.chunk_exists(shared)
            assert ino in {r.ino for r in audit.lost_references(ino)}
            assert shared not in {c.id for c in audit.chunks_without_block()}
            assert audit.drop_references(other) > 0
            assert audit.mark_chunk_lost(alone) == []
            assert not audit.chunk_exists(alone)
