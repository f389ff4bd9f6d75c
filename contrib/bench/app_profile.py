"""Where the daemon spends its time during app_bench's operations (py-spy).

    python -m contrib.bench.app_profile

On a fresh mount of a store holding the metadata.json of 1,000 sessions, ``py-spy record`` on the
daemon while each operation runs many times: that metadata read (cold, then warm), small creates, atomic saves, app steps, a whole session written, and the first read of a
64 MB attachment after a remount and ``drop_caches``. Prints one markdown line per operation with
its busy-sample shares, each sample charged to the innermost sessionfs function on its stack
(``runner.summarize_profile``).
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

from contrib.bench.app_bench import put, save_atomic
from contrib.bench.mount_bench import (MB, Mounted, drop_caches, durable_mount, many_metadata, read_file,
                                       read_metadata, session_files, write_session)
from contrib.bench.runner import Profiler
from store import Store


def daemon_pid(m: Mounted) -> int:
    return orjson.loads((m.mnt / ".sessionfs" / "stats.json").read_bytes())["pid"]


def profiled(name: str, pid: int, out: Path, work) -> str:
    with Profiler(pid, out) as p:
        t = time.perf_counter()
        work()
        seconds = time.perf_counter() - t
    s = p.summary(8)
    return (f"- **{name}** ({seconds:.2f} s, {s['samples']} busy samples, {s['idle_samples']} idle): "
            + ", ".join(f"{o['frame']} {o['share']:.0%}" for o in s["own"]))


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="app-profile-"))
    meta = many_metadata(1000)
    with Store.open(work / "store", create=True) as store:
        store.write_files({f"sessions/{sid}/metadata.json": data for sid, data in meta.items()})
        store.flush()
    (work / "mnt").mkdir()
    m = Mounted(work / "store", work / "mnt")
    pool = random.Random(5).randbytes(4 * MB)
    _, full = session_files(7, 0, profile="full")
    try:
        m.mount()
        root = m.mnt / "sessions"
        drop_caches()
        print(profiled("metadata.json of 1,000 sessions, fresh mount", daemon_pid(m), work / "profile.txt",
                       lambda: read_metadata(root, set(meta))), flush=True)
        print(profiled("same, warm", daemon_pid(m), work / "profile.txt", lambda: read_metadata(root, set(meta))),
              flush=True)
        ops = {
            "create 8 KB": lambda: [put(root / f"c{i}", pool[:8192]) for i in range(400)],
            "atomic save (fsync + rename)": lambda: [save_atomic(root / "meta.json", pool[i:i + 4096])
                                                     for i in range(150)],
            "app step": lambda: [(put(root / f"p{i}.png", pool[i:i + 300_000]), put(root / "chunk", pool[i:i + MB]),
                                  save_atomic(root / "meta.json", pool[i:i + 4096])) for i in range(60)],
            "write a session until the last close": lambda: write_session(root / "session", full, lambda *a: None),
        }
        for name, op in ops.items():
            print(profiled(name, daemon_pid(m), work / "profile.txt", op), flush=True)
            durable_mount(root, {})
        put(root / "big", random.Random(1).randbytes(64 * MB))
        durable_mount(root, {})
        m.remount()
        drop_caches()
        print(profiled("first read of a 64 MB attachment after drop_caches", daemon_pid(m), work / "profile.txt",
                       lambda: read_file(root / "big")))
    finally:
        m.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
