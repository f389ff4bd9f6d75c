"""Fault injection in-process: pack appends, pack fsyncs, object puts and catalog commits fail (EIO, ENOSPC).

The store runs over ``store.backends.objects.faults.FaultyPacks`` / ``CatalogFaults`` with a schedule (puts before
the catalog commit with ``seal_every_commit``, after it without);
writes go through the path API (``write_files`` + ``flush``) and the inode API
(``write`` + ``fsync``). Checked for every schedule:

- ``flush``/``fsync`` raise ``FsError`` carrying the injected errno (never return
  silently while the data is not durable);
- data committed before the faults started reads back exactly, during and after;
- once the faults stop, everything queued commits (latest versions read back), and the
  store reopened without faults passes ``verify(data=True)`` (hashes, refcounts, packs).

The module prints one summary line: faults injected by kind and the outcomes seen.
"""

from __future__ import annotations

import errno
import os
import random
import stat
from collections import Counter

import pytest

import store.engine.persist as persist
from store.engine.store import Store
from store.core.errors import FsError
from store.backends.objects.faults import CatalogFaults, FaultCounts, FaultyPacks, Schedule
from store.backends.objects.packs import PACK_TARGET_SIZE, local_packer
from store.services.verify import verify

EIO, ENOSPC = errno.EIO, errno.ENOSPC
TOTALS = FaultCounts()
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch):
    monkeypatch.setattr(persist, "RETRY_DELAY", 0.01)


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


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_store_under_faults(tmp_path, name):
    sched = SCHEDULES[name]
    # Fresh schedule objects per run (parametrize shares the dict).
    pack_size = sched.get("pack_size", PACK_TARGET_SIZE)
    seal_every_commit = sched.get("seal_every_commit", False)
    sched = {k: Schedule(every=v.every, calls=v.calls, rate=v.rate, errno=v.errnos, seed=1 + len(name),
                         torn=v.torn) for k, v in sched.items() if isinstance(v, Schedule)}
    for s in sched.values():
        s.enabled = False
    root = tmp_path / "store"
    Store.init(root)
    counts = FaultCounts()
    packs = FaultyPacks(local_packer(root, pack_size, seal_every_commit=seal_every_commit),
                        append=sched.get("append"), sync=sched.get("sync"), put=sched.get("put"), counts=counts)
    st = Store.open(root, packs=packs, sync_interval=3600)
    cat = CatalogFaults.install(st, sched.get("catalog") or Schedule(), counts)
    rnd = random.Random(name)
    outcomes: Counter[str] = Counter()
    try:
        # Committed before any fault.
        base = {f"sessions/base/f{i}.bin": _payload(rnd, f"base{i}") for i in range(5)}
        st.write_files(base)
        st.flush()
        sdir = st.make_node(st.resolve("sessions"), b"inode", stat.S_IFDIR | 0o755, 0, 0).id
        inos = [st.make_node(sdir, b"f%d" % j, stat.S_IFREG | 0o644, 0, 0).id for j in range(3)]
        for ino in inos:
            st.write(ino, 0, b"initial")
            st.fsync(ino)

        for s in sched.values():
            s.enabled = True
        latest = dict(base)
        content = {ino: bytearray(b"initial") for ino in inos}
        for step in range(30):
            if rnd.random() < 0.5:
                path = f"sessions/s{rnd.randint(0, 3)}/file{rnd.randint(0, 4)}.bin"
                data = _payload(rnd, f"{name}{step}")
                try:
                    st.write_files({path: data})
                except FsError as exc:      # only catalog faults can hit the queueing itself
                    outcomes[f"write_files:{errno.errorcode[exc.errno]}"] += 1
                    continue
                latest[path] = data
                try:
                    st.flush()
                    outcomes["flush:ok"] += 1
                except FsError as exc:
                    assert exc.errno in (EIO, ENOSPC), exc
                    outcomes[f"flush:{errno.errorcode[exc.errno]}"] += 1
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
                    outcomes["fsync:ok"] += 1
                except FsError as exc:
                    assert exc.errno in (EIO, ENOSPC), exc
                    outcomes[f"fsync:{errno.errorcode[exc.errno]}"] += 1
            # Committed data keeps reading back, whatever the faults.
            for p, data in base.items():
                assert st.read_path(p) == data
            # Reads see the latest written version even when it is not committed yet.
            for ino in inos:
                assert st.read_all(ino) == bytes(content[ino])

        assert counts.total() > 0, f"schedule {name} injected nothing"
        assert any(not k.endswith(":ok") for k in outcomes), f"no error reached the caller: {outcomes}"
        # Faults stop: everything queued commits.
        packs.stop_faults()
        cat.schedule.enabled = False
        st.flush()
        for p, data in latest.items():
            assert st.read_path(p) == data
        for ino in inos:
            assert st.read_all(ino) == bytes(content[ino])
    finally:
        st.close()
    st = Store.open(root, packs=local_packer(root, pack_size))
    try:
        report = verify(st, data=True)
        assert report.ok, [p.message for p in report.errors]
        for p, data in latest.items():
            assert st.read_path(p) == data
        for ino in inos:
            assert st.read_all(ino) == bytes(content[ino])
        assert not os.listdir(root / "staging")
    finally:
        st.close()
    for key, n in counts.counts.items():
        TOTALS.counts[key] += n
    OUTCOMES.update(outcomes)
    print(f"\n{name}: injected {counts.summary()}; outcomes {dict(outcomes)}")
