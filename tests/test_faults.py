"""Fault injection in-process: pack appends, pack fsyncs and catalog commits fail (EIO, ENOSPC).

The store runs over ``store.backends.objects.faults.FaultyPacks`` / ``CatalogFaults`` with a schedule
(pack appends, the fsync before a commit, object puts, catalog commits);
writes go through the path API (``write_files`` + ``flush``) and the inode API
(``write`` + ``fsync``). Every ``flush``/``fsync`` call's outcome is recorded, and checked:

- an error carries the injected errno (``FsError`` with EIO or ENOSPC);
- an OK means durable, call by call: the workload runs in a child process that is
  SIGKILLed right after the last call (nothing flushed after it), then a power cut drops
  every byte of the open (local) packs written since the last pack sync that succeeded
  (sealed packs put into the object store were fsynced whole) and the staged (never
  fsynced) writes; the reopened store must give each file the version its last OK call made
  durable or a later one it was given;
- data committed before the faults started reads back exactly, during and after;
- the recovered store commits what it replays and passes ``verify(data=True)``.

The module prints one summary line: faults injected by kind and the outcomes seen.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import random
import signal
import stat
import traceback
from collections import Counter
from pathlib import Path

import pytest

import store.engine.persist as persist
from store.backends.objects.faults import CatalogFaults, FaultCounts, FaultyPacks, Schedule
from store.backends.objects.packs import PACK_TARGET_SIZE, local_packer
from store.core.errors import FsError, IntegrityError
from store.engine.store import Store
from store.services.verify import verify

EIO, ENOSPC = errno.EIO, errno.ENOSPC
TOTALS = FaultCounts()
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    print(f"\nfault injection: injected {TOTALS.total()} faults ({TOTALS.summary()}); "
          f"outcomes: {', '.join(f'{k}={v}' for k, v in sorted(OUTCOMES.items()))}")


def _payload(rnd: random.Random, tag: str) -> bytes:
    kind = rnd.random()
    if kind < 0.4:
        return (f"{tag} " * rnd.randint(10, 3000)).encode()
    return rnd.randbytes(rnd.randint(100, 200_000))


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _open_packs(root: Path) -> dict[str, int]:
    """The local store's open (not yet put) pack files and their sizes."""
    return {p.name: p.stat().st_size for p in (root / "packing").iterdir() if p.name.endswith(".pack")}


class DurablePacks(FaultyPacks):
    """FaultyPacks that writes down, after every fsync before a commit that succeeded, each open
    pack file's size: what a power cut keeps of them. (A batch's catalog commit follows that
    fsync, so the record never lags behind what the catalog points at.)"""

    def __init__(self, inner, root: Path, record: Path, **kw):
        super().__init__(inner, **kw)
        self.root, self.record = root, record

    def prepare_commit(self) -> None:
        super().prepare_commit()
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(_open_packs(self.root)))
        os.replace(tmp, self.record)


def power_cut(root: Path, record: Path) -> int:
    """Lose what a power cut loses: every open-pack byte not covered by a successful fsync
    (open packs created since: gone) and the staged writes (never fsynced; after a reboot the
    store drops them itself). Packs put into the object store were fsynced whole before the put
    returned, so they stay. Returns how many bytes went."""
    cut = 0
    for staged in (root / "staging").iterdir():
        cut += staged.stat().st_size
        staged.unlink()
    synced = json.loads(record.read_text()) if record.exists() else {}
    for name, size in _open_packs(root).items():
        keep = synced.get(name, 0)
        if size > keep:
            cut += size - keep
            if name in synced:
                os.truncate(root / "packing" / name, keep)
            else:
                os.unlink(root / "packing" / name)
    return cut


SCHEDULES = {
    "append-every3-eio-enospc-torn": dict(append=Schedule(every=3, errno=[EIO, ENOSPC], torn=True)),
    "append-calls-enospc": dict(append=Schedule(calls=[1, 2, 5, 9, 14], errno=ENOSPC)),
    "sync-every2-eio": dict(sync=Schedule(every=2, errno=EIO)),
    "sync-random-enospc": dict(sync=Schedule(rate=0.4, errno=[ENOSPC, EIO], seed=7)),
    "catalog-every3-eio": dict(catalog=Schedule(every=3, errno=EIO)),
    # Small packs: faults hit appends that start a new pack file (torn: the file exists).
    "append-newpack-torn-small-packs": dict(append=Schedule(every=2, errno=[ENOSPC, EIO], torn=True),
                                            pack_size=64 * 1024),
    "mixed-random": dict(append=Schedule(rate=0.2, errno=[EIO, ENOSPC], torn=True, seed=1),
                         sync=Schedule(rate=0.2, errno=ENOSPC, seed=2),
                         catalog=Schedule(rate=0.2, errno=[ENOSPC, EIO], seed=3)),
    # Every commit seals its pack and puts it before the catalog commit (the S3 policy).
    "seal-every-commit-put-every2-eio": dict(put=Schedule(every=2, errno=[EIO, ENOSPC]), seal_every_commit=True),
    "seal-every-commit-mixed": dict(append=Schedule(rate=0.2, errno=[EIO, ENOSPC], torn=True, seed=1),
                                    put=Schedule(rate=0.3, errno=EIO, seed=4),
                                    catalog=Schedule(rate=0.2, errno=[ENOSPC, EIO], seed=3),
                                    seal_every_commit=True, pack_size=64 * 1024),
    # Puts after the commit (the local policy) fail: the data stays local and is put later.
    "put-after-commit-every2-eio": dict(put=Schedule(every=2, errno=EIO), append=Schedule(every=4, errno=EIO),
                                        pack_size=64 * 1024),
}


class Calls:
    """Each flush/fsync call's outcome and, per file, the versions a crash may leave."""

    def __init__(self):
        self.log: list[str] = []
        self.paths: dict[str, list[str]] = {}       # path -> versions written, in order
        self.path_ok: dict[str, tuple[int, int]] = {}   # path -> (version index, call) of its last OK
        self.snaps: dict[int, list[str]] = {}       # ino -> content at each fsync call
        self.ino_ok: dict[int, tuple[int, int]] = {}

    def wrote(self, path: str, data: bytes) -> None:
        self.paths.setdefault(path, []).append(_sha(data))

    def flushed(self, outcome: str) -> None:
        self.log.append(f"flush:{outcome}")
        if outcome == "ok":
            for path, versions in self.paths.items():
                self.path_ok[path] = (len(versions) - 1, len(self.log))

    def fsynced(self, ino: int, content: bytes, outcome: str) -> None:
        self.log.append(f"fsync:{outcome}")
        snaps = self.snaps.setdefault(ino, [])
        snaps.append(_sha(content))
        if outcome == "ok":
            self.ino_ok[ino] = (len(snaps) - 1, len(self.log))

    def allowed(self, content: dict[int, bytearray]) -> dict:
        """What each file may read as after a crash now: its last OK version or a later one."""
        paths = {p: {"call": self.path_ok.get(p, (0, None))[1],
                     "allowed": v[self.path_ok[p][0]:] if p in self.path_ok else [None, *v]}
                 for p, v in self.paths.items()}
        inos = {ino: {"call": self.ino_ok[ino][1],
                      "allowed": [*s[self.ino_ok[ino][0]:], _sha(bytes(content[ino]))]}
                for ino, s in self.snaps.items()}
        return {"paths": paths, "inos": inos, "log": self.log}


def _workload(root: Path, name: str, pack_size: int, record: Path, out: Path) -> None:
    """The store under faults, in a child process that SIGKILLs itself after its last call."""
    try:
        persist.RETRY_DELAY = 0.01
        _run_workload(root, name, pack_size, record, out)
    except BaseException:
        out.with_suffix(".error").write_text(traceback.format_exc())
        os._exit(1)
    os.kill(os.getpid(), signal.SIGKILL)


def _run_workload(root: Path, name: str, pack_size: int, record: Path, out: Path) -> None:
    sched = SCHEDULES[name]
    seal_every_commit = sched.get("seal_every_commit", False)
    sched = {k: Schedule(every=v.every, calls=v.calls, rate=v.rate, errno=v.errnos, seed=1 + len(name),
                         torn=v.torn) for k, v in sched.items() if isinstance(v, Schedule)}
    for s in sched.values():
        s.enabled = False
    Store.init(root)
    counts = FaultCounts()
    packs = DurablePacks(local_packer(root, pack_size, seal_every_commit=seal_every_commit), root, record,
                         append=sched.get("append"), sync=sched.get("sync"), put=sched.get("put"), counts=counts)
    st = Store.open(root, packs=packs, sync_interval=3600)
    CatalogFaults.install(st, sched.get("catalog") or Schedule(), counts)
    rnd = random.Random(name)
    outcomes: Counter[str] = Counter()
    calls = Calls()
    # Committed before any fault.
    base = {f"sessions/base/f{i}.bin": _payload(rnd, f"base{i}") for i in range(5)}
    st.write_files(base)
    for p, data in base.items():
        calls.wrote(p, data)
    st.flush()
    calls.flushed("ok")
    sdir = st.make_node(st.resolve("sessions"), b"inode", stat.S_IFDIR | 0o755, 0, 0).id
    inos = [st.make_node(sdir, b"f%d" % j, stat.S_IFREG | 0o644, 0, 0).id for j in range(3)]
    content = {ino: bytearray(b"initial") for ino in inos}
    for ino in inos:
        st.write(ino, 0, b"initial")
        st.fsync(ino)
        calls.fsynced(ino, content[ino], "ok")

    for s in sched.values():
        s.enabled = True
    for step in range(30):
        if rnd.random() < 0.5:
            path = f"sessions/s{rnd.randint(0, 3)}/file{rnd.randint(0, 4)}.bin"
            data = _payload(rnd, f"{name}{step}")
            try:
                st.write_files({path: data})
            except FsError as exc:      # only catalog faults can hit the queueing itself
                outcomes[f"write_files:{errno.errorcode[exc.errno]}"] += 1
                continue
            calls.wrote(path, data)
            try:
                st.flush()
                outcome = "ok"
            except FsError as exc:
                assert exc.errno in (EIO, ENOSPC), exc
                outcome = errno.errorcode[exc.errno]
            calls.flushed(outcome)
            outcomes[f"flush:{outcome}"] += 1
        else:
            ino = rnd.choice(inos)
            off = rnd.randint(0, len(content[ino]) + 100)
            data = _payload(rnd, f"i{step}")[:50_000]
            st.write(ino, off, data)
            buf = content[ino]
            if off > len(buf):
                buf.extend(b"\0" * (off - len(buf)))
            buf[off:off + len(data)] = data
            try:
                st.fsync(ino)
                outcome = "ok"
            except FsError as exc:
                assert exc.errno in (EIO, ENOSPC), exc
                outcome = errno.errorcode[exc.errno]
            calls.fsynced(ino, buf, outcome)
            outcomes[f"fsync:{outcome}"] += 1
        # Committed data keeps reading back, whatever the faults.
        for p, data in base.items():
            assert st.read_path(p) == data
        # Reads see the latest written version even when it is not committed yet.
        for ino in inos:
            assert st.read_all(ino) == bytes(content[ino])
    out.write_text(json.dumps({**calls.allowed(content), "outcomes": outcomes,
                               "counts": [[op, code, n] for (op, code), n in counts.counts.items()]}))


def _read_after_crash(read) -> str | None:
    """The content's hash, None when the file is absent, or why it cannot be read."""
    try:
        return _sha(read())
    except FsError as exc:
        if exc.errno == errno.ENOENT:
            return None
        return f"unreadable ({exc})"
    except IntegrityError as exc:
        return f"unreadable ({exc})"


def _ok_call(calls: list[str], n: int | None) -> str:
    return "that no call" if n is None else f"that call {n} ({calls[n - 1]})"


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_store_under_faults(tmp_path, name):
    pack_size = SCHEDULES[name].get("pack_size", PACK_TARGET_SIZE)
    root, record, out = tmp_path / "store", tmp_path / "synced.json", tmp_path / "calls.json"
    child = multiprocessing.get_context("spawn").Process(target=_workload, args=(root, name, pack_size, record, out))
    child.start()
    child.join(timeout=300)
    error = out.with_suffix(".error")
    assert child.exitcode == -signal.SIGKILL, error.read_text() if error.exists() else child.exitcode
    result = json.loads(out.read_text())
    counts = FaultCounts()
    for op, code, n in result["counts"]:
        counts.counts[(op, code)] += n
    outcomes = Counter(result["outcomes"])

    cut = power_cut(root, record)
    st = Store.open(root, packs=local_packer(root, pack_size))
    try:
        calls = result["log"]
        for path, want in result["paths"].items():
            got = _read_after_crash(lambda: st.read_path(path))
            assert got in want["allowed"], (
                f"{path}: after the crash {got}, not the version {_ok_call(calls, want['call'])} made "
                f"durable, nor a later one")
        for ino, want in result["inos"].items():
            got = _read_after_crash(lambda: st.read_all(int(ino)))
            assert got in want["allowed"], (
                f"inode {ino}: after the crash {got}, not the content {_ok_call(calls, want['call'])} made "
                f"durable, nor a later one")
        st.flush()
        report = verify(st, data=True)
        assert report.ok, [p.message for p in report.errors]
    finally:
        st.close()
    assert counts.total() > 0, f"schedule {name} injected nothing"
    assert any(not k.endswith(":ok") for k in outcomes), f"no error reached the caller: {outcomes}"
    for key, n in counts.counts.items():
        TOTALS.counts[key] += n
    OUTCOMES.update(outcomes)
    print(f"\n{name}: injected {counts.summary()}; outcomes {dict(outcomes)}; "
          f"{sum(1 for c in calls if c.endswith(':ok'))} OK calls checked after a power cut that took {cut} unsynced bytes")
