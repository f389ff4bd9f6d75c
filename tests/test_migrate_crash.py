"""The import survives SIGKILL (and Ctrl-C) anywhere: rerun, and each session is there exactly once.

A child process runs the real ``sessionfs import`` (``store.cli.main``) with a kill
installed at a random point: inside the commit transaction of a session's group, right
after a commit (the session committed but not yet verified), at the start of a
verification, after the "verified" records were queued, when a group is queued, or at
a random time. After every kill the store is opened (recovery) and checked: every
session directory has exactly one active migration record and vice versa (a session
and its record commit together), each holds the legacy file's values and attachment
bytes (never half a session), reference counts are consistent, ``sessionfs verify --data``
finds nothing, LEGACY_DIR is unchanged.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from contrib.corpus import write_legacy_store
from checks import tree_digest
from store import Store
from store.core.layout import attachment_refs
from store.backends.catalog.sqlite.view import SqliteView, sql
from store.core.errors import CatalogError
from store.services.migrate import load_records
from store.services.sessions import SessionStore
from store.services.verify import Verifier          # ``sessionfs verify``

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 36
MIN_KILLS = 12

CHILD = r"""
import os, random, signal, sys, threading
hook, nth, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
args = sys.argv[4:]
from store.engine import store as engine
from store.services import migrate
from store.cli import main as cli

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after_nth(cls, name, before=True):
    orig = getattr(cls, name)
    count = [0]
    def wrapped(*a, **k):
        count[0] += 1
        if before and count[0] == nth:
            die()
        result = orig(*a, **k)
        if not before and count[0] == nth:
            die()
        return result
    setattr(cls, name, wrapped)

if hook == "in-txn":            # inside the SQLite transaction, after the group and its record
    after_nth(engine.Store, "_apply_group", before=False)
elif hook == "after-commit":    # committed; verification not done
    after_nth(engine.Store, "_after_commit", before=True)
elif hook == "verify":
    after_nth(migrate.Migrator, "_verify", before=True)
elif hook == "mark-verified":
    after_nth(migrate.Migrator, "_mark_verified", before=False)
elif hook == "write-files":
    after_nth(engine.Store, "write_files", before=True)
elif hook == "timer":
    threading.Timer(delay, die).start()
sys.exit(cli.main(args))
"""

HOOKS = ("in-txn", "after-commit", "verify", "mark-verified", "write-files", "timer")


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_child(log: Path, marker: str, hook: str, nth: int, delay: float, *args) -> int:
    """Run the importer with a kill hook; output to a file (not pipes a killed child's helpers may hold)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, hook, str(nth), str(delay), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=dict(env(), MIGRATE_CRASH_MARK=marker))
        try:
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    if code not in (0, 3, -signal.SIGKILL):
        raise AssertionError(f"child exited {code}: {log.read_text()[-3000:]}")
    return code


def no_orphans(marker: str, timeout: float = 10) -> bool:
    """True once no process carries ``MIGRATE_CRASH_MARK=marker`` in its environment (the importer
    and any helper it started: forkserver, pool workers)."""
    needle = f"MIGRATE_CRASH_MARK={marker}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    if needle in Path(f"/proc/{pid}/environ").read_bytes():
                        found.append(pid)
                except OSError:
                    continue
        if not found:
            return True
        time.sleep(0.1)
    return False


class Legacy:
    def __init__(self, root: Path):
        self.root = root
        self.values = {}
        self.attachments = {}
        index = {p.name.rpartition(".")[0]: p for p in (root / "attachments").iterdir()}
        for path in (root / "sessions").iterdir():
            try:
                doc = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                continue
            self.values[doc["id"]] = doc
            self.attachments[doc["id"]] = {index[r].name: index[r].read_bytes() for r in attachment_refs(doc)}


def check_store(store_path: Path, legacy: Legacy) -> dict[str, str]:
    """The invariants after any kill; returns {session id: record status}."""
    with Store.open(store_path) as store:             # recovery runs here
        db = store.catalog.reader()
        records = load_records(db)
        active = [r for r in records if r.status in ("imported", "verified", "finalized")]
        ids = [r.session_id for r in active]
        assert len(ids) == len(set(ids)), "a session has two active records"
        try:
            present = set(store.list_dir("sessions"))
        except Exception:  # noqa: BLE001 - no sessions/ yet
            present = set()
        assert present == set(ids), f"tree and record disagree: {sorted(present ^ set(ids))}"
        sessions = SessionStore(store)
        for sid in present:
            assert sessions.load_full_session(sid) == legacy.values[sid], f"{sid} is not whole"
            names = set(sessions.list_attachments(sid))
            assert names == set(legacy.attachments[sid])
            for name, data in legacy.attachments[sid].items():
                assert store.read_path(f"sessions/{sid}/attachments/{name}") == data
        assert sql(db).execute("SELECT count(*) FROM sessions").fetchone()[0] == len(present)
        wrong = sql(db).execute("SELECT count(*) FROM (SELECT c.id FROM chunks c LEFT JOIN file_chunks f "
                           "ON f.chunk_id = c.id GROUP BY c.id HAVING c.refcount != count(f.chunk_id))").fetchone()[0]
        assert wrong == 0, "reference counts disagree with the files"
        assert sql(db).execute("SELECT count(*) FROM inodes WHERE nlink = 0").fetchone()[0] == 0
        report = Verifier(store, data=True).run()
        assert report.ok, report.summary()
        return {r.session_id: r.status for r in active}


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "legacy"
    write_legacy_store(root, SESSIONS, seed=31, profile="small")
    (root / "sessions" / "broken.json").write_bytes(b'{"id": "broken", "tags": ')
    return root


def test_sigkill_at_random_points_then_rerun_imports_each_session_once(legacy_dir, tmp_path):
    rnd = random.Random(int(os.environ.get("MIGRATE_CRASH_SEED", "20250124")))
    legacy = Legacy(legacy_dir)
    before = tree_digest(legacy_dir)
    kills = completions = campaign = 0
    hooks_hit = set()
    log: list[str] = []
    store_path = None
    while kills < MIN_KILLS or store_path is not None:
        if store_path is None:
            campaign += 1
            store_path = tmp_path / f"store{campaign}"
            Store.init(store_path)
        hook = rnd.choice(HOOKS)
        nth = rnd.randint(1, 12)
        delay = rnd.uniform(0.05, 1.5)
        batch = rnd.choice((1, 4, 16))
        jobs = rnd.choice((1, 1, 2))
        if kills >= MIN_KILLS:
            hook = "none"                  # enough kills: let this campaign finish
        marker = f"{os.getpid()}-{kills}-{completions}-{campaign}"
        code = run_child(tmp_path / "child.log", marker, hook, nth, delay, "import", store_path, legacy_dir,
                         "--batch", batch, "--jobs", jobs, "--no-progress")
        assert no_orphans(marker), "a killed importer left processes behind"
        statuses = check_store(store_path, legacy)
        assert tree_digest(legacy_dir) == before
        if code == -signal.SIGKILL:
            kills += 1
            hooks_hit.add(hook)
            log.append(f"{hook}#{nth if hook != 'timer' else f'{delay:.2f}s'} (batch {batch}, jobs {jobs}): "
                       f"{sum(1 for v in statuses.values() if v == 'verified')} verified, "
                       f"{sum(1 for v in statuses.values() if v == 'imported')} awaiting verification")
            continue
        assert code == 3                   # broken.json fails every time; everything else imported
        assert set(statuses) == set(legacy.values) and set(statuses.values()) == {"verified"}
        completions += 1
        store_path = None
    print(f"\n{kills} kills in {campaign} campaigns:", *log, sep="\n  ")
    assert kills >= MIN_KILLS and completions >= 1
    assert len(hooks_hit) >= 3, hooks_hit


def _verified(store_path: Path) -> int:
    """Sessions the running import has verified so far (read-only look at its catalog)."""
    try:
        db = sqlite3.connect(f"file:{store_path / 'catalog.db'}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return 0
    try:
        return sum(1 for r in load_records(SqliteView(db, writable=False)) if r.status == "verified")
    except CatalogError:                       # the catalog is still being created
        return 0
    finally:
        db.close()


def test_ctrl_c_stops_cleanly_and_the_rerun_continues(legacy_dir, tmp_path):
    legacy = Legacy(legacy_dir)
    store_path = tmp_path / "store"
    Store.init(store_path)
    proc = subprocess.Popen([sys.executable, "-m", "store.cli", "import", store_path, legacy_dir, "--batch", "2",
                             "--no-progress"], cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Ctrl-C once some sessions are verified and most are not: the import is interrupted for sure.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _verified(store_path) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err.decode())
    assert b"Traceback" not in err
    statuses = check_store(store_path, legacy)
    assert set(statuses.values()) <= {"verified"}          # in-flight sessions were verified before exit
    assert 2 <= len(statuses) < len(legacy.values), statuses
    assert b"run the same command again" in out
    rerun = subprocess.run([sys.executable, "-m", "store.cli", "import", store_path, legacy_dir, "--no-progress"],
                           cwd=ROOT, env=env(), capture_output=True, timeout=120)
    assert rerun.returncode == 3
    assert f"{len(statuses)} already imported".encode() in rerun.stdout
    statuses = check_store(store_path, legacy)
    assert set(statuses) == set(legacy.values) and set(statuses.values()) == {"verified"}
