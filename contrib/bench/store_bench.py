"""Store vs plain directory: ingest throughput, metadata latency, session listing.

    python -m contrib.bench.store_bench [--sessions N] [--quick] [--repeats R] [--dir DIR]

Measured in one run, each number the median over ``--repeats`` runs:

- ingest: one generated 2-hour session (its split JSON files plus attachments)
  through ``Store.write_files`` + ``flush()``, against writing the same files to a
  plain directory and fsyncing them (and their directories) at the end;
- load_metadata: ``read_path(sessions/<id>/metadata.json)`` + ``orjson.loads``,
  p50/p99 over many calls on a warm store, and p50/p99 of the first call after
  each of many reopens (new catalog connections, empty block cache); against
  open/read/loads of the same file in the plain directory;
- list: the ids of N sessions by SQL over the ``sessions`` table, newest first,
  then every metadata.json read and parsed; against listing a plain directory
  of N session directories and reading each metadata.json.

The plain directory lives in the same file system as the store. Its "first
read" is served from the page cache like every other plain read (dropping the
cache would need root and disturb the machine), so that row compares the
store's reopen cost against a warm plain read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from store import Store
from store.backends.catalog.sqlite.view import sql

JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE      # as store/sessions.py writes files


# ---------------------------------------------------------------- data
def session_files(seed: int, index: int, profile: str = "full") -> tuple[str, dict[str, bytes]]:
    """(session id, {relative path: bytes}) of one generated session, as the store lays it out."""
    try:
        from contrib.corpus import generate_session
        from store.core.layout import split_session
    except ImportError:                                   # pragma: no cover - fallback without the corpus
        return _simple_session(seed, index)
    session, attachments = generate_session(seed, index, profile=profile)
    files = {path: orjson.dumps(value, option=JSON_OPTS) for path, value in split_session(session).items()}
    for name, blob in attachments.items():
        files[f"attachments/{name}"] = blob
    return session["id"], files


def _simple_session(seed: int, index: int) -> tuple[str, dict[str, bytes]]:
    import random
    rnd = random.Random(seed * 100_003 + index)
    words = "the session editor terminal focus python function review commit branch window error test".split()
    sid = f"{rnd.getrandbits(128):032x}"
    shots = [{"id": f"s{i}", "timestamp": f"2025-01-06T09:{i // 60:02d}:{i % 60:02d}.000Z",
              "aiAnalysis": " ".join(rnd.choice(words) for _ in range(200))} for i in range(120)]
    files = {"metadata.json": orjson.dumps({"id": sid, "name": f"Session {index}", "status": "completed",
                                            "startTime": f"2025-01-{index % 28 + 1:02d}T09:00:00.000Z",
                                            "tags": rnd.sample(words, 3)}, option=JSON_OPTS)}
    for c in range(6):
        files[f"screenshots/chunk-{c + 1:03d}.json"] = orjson.dumps(
            {"sessionId": sid, "chunkIndex": c, "screenshots": shots[c * 20:(c + 1) * 20]}, option=JSON_OPTS)
    return sid, files


def many_metadata(n: int, seed: int) -> dict[str, bytes]:
    """{session id: metadata.json bytes} of ``n`` generated (small profile) sessions."""
    try:
        from contrib.corpus import generate_session
        from store.core.layout import split_session
    except ImportError:                                   # pragma: no cover
        return {sid: files["metadata.json"] for sid, files in (_simple_session(seed, i) for i in range(n))}
    out = {}
    for i in range(n):
        session, _ = generate_session(seed, i, profile="small", attachments=False)
        out[session["id"]] = orjson.dumps(split_session(session)["metadata.json"], option=JSON_OPTS)
    return out


# ---------------------------------------------------------------- plain directory helpers
def fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_plain(root: Path, files: dict[str, bytes]) -> None:
    dirs = set()
    for rel, data in files.items():
        path = root / rel
        if path.parent not in dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            dirs.add(path.parent)
        with open(path, "wb") as f:
            f.write(data)
    for rel in files:                                     # fsync at the end, for fairness
        fsync_path(root / rel)
    for d in sorted(dirs | {root}, key=lambda p: -len(p.parts)):
        fsync_path(d, directory=True)


# ---------------------------------------------------------------- measurements
def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def bench_ingest(work: Path, sid: str, files: dict[str, bytes], repeats: int) -> dict:
    total = sum(map(len, files.values()))
    store_rates, plain_rates, savings = [], [], []
    for r in range(repeats):
        root = work / f"ingest-store-{r}"
        Store.init(root)
        store = Store.open(root)
        try:
            t0 = time.perf_counter()
            store.write_files({f"sessions/{sid}/{rel}": data for rel, data in files.items()})
            store.flush()
            store_rates.append(total / (time.perf_counter() - t0))
            savings.append(store.statistics().stored_bytes)
        finally:
            store.close()
        shutil.rmtree(root)
        plain = work / f"ingest-plain-{r}"
        t0 = time.perf_counter()
        write_plain(plain / "sessions" / sid, files)
        plain_rates.append(total / (time.perf_counter() - t0))
        shutil.rmtree(plain)
    return {"bytes": total, "files": len(files), "store": statistics.median(store_rates),
            "plain": statistics.median(plain_rates), "stored_bytes": statistics.median(savings)}


def bench_metadata(work: Path, sid: str, files: dict[str, bytes], repeats: int, calls: int,
                   reopens: int) -> dict:
    root = work / "meta-store"
    Store.init(root)
    with Store.open(root) as store:
        store.write_files({f"sessions/{sid}/{rel}": data for rel, data in files.items()})
    plain = work / "meta-plain"
    write_plain(plain / "sessions" / sid, files)
    path = f"sessions/{sid}/metadata.json"
    plain_path = plain / path
    res = {k: [] for k in ("store_p50", "store_p99", "plain_p50", "plain_p99", "store_first_p50",
                           "store_first_p99", "plain_first")}

    def plain_load():
        with open(plain_path, "rb") as f:
            return orjson.loads(f.read())

    for _ in range(repeats):
        # first call on a freshly reopened store (new catalog connections, empty cache)
        firsts = []
        for _ in range(reopens):
            store = Store.open(root)
            try:
                t0 = time.perf_counter()
                orjson.loads(store.read_path(path))
                firsts.append(time.perf_counter() - t0)
            finally:
                store.close()
        res["store_first_p50"].append(pct(firsts, 0.5))
        res["store_first_p99"].append(pct(firsts, 0.99))
        t0 = time.perf_counter()
        plain_load()
        res["plain_first"].append(time.perf_counter() - t0)
        # warm: many calls
        store = Store.open(root)
        try:
            orjson.loads(store.read_path(path))
            samples = []
            for _ in range(calls):
                t0 = time.perf_counter()
                orjson.loads(store.read_path(path))
                samples.append(time.perf_counter() - t0)
        finally:
            store.close()
        res["store_p50"].append(pct(samples, 0.5))
        res["store_p99"].append(pct(samples, 0.99))
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            plain_load()
            samples.append(time.perf_counter() - t0)
        res["plain_p50"].append(pct(samples, 0.5))
        res["plain_p99"].append(pct(samples, 0.99))
    shutil.rmtree(root)
    shutil.rmtree(plain)
    return {k: statistics.median(v) for k, v in res.items()}


def bench_list(work: Path, metas: dict[str, bytes], repeats: int) -> dict:
    root = work / "list-store"
    Store.init(root)
    with Store.open(root) as store:
        items = list(metas.items())
        for i in range(0, len(items), 200):
            store.write_files({f"sessions/{sid}/metadata.json": data for sid, data in items[i:i + 200]})
    plain = work / "list-plain"
    write_plain(plain / "sessions", {f"{sid}/metadata.json": data for sid, data in metas.items()})
    store_times, plain_times, first_times = [], [], []
    n = len(metas)

    def store_list(store: Store) -> list:
        ids = [r[0] for r in sql(store.catalog.reader()).execute(
            "SELECT id FROM sessions ORDER BY start_time DESC")]
        return [orjson.loads(store.read_path(f"sessions/{sid}/metadata.json")) for sid in ids]

    def plain_list() -> list:
        base = plain / "sessions"
        out = []
        for entry in os.scandir(base):
            with open(os.path.join(entry.path, "metadata.json"), "rb") as f:
                out.append(orjson.loads(f.read()))
        out.sort(key=lambda m: m.get("startTime") or "", reverse=True)
        return out

    for _ in range(repeats):
        store = Store.open(root)
        try:
            t0 = time.perf_counter()
            got = store_list(store)
            first_times.append(time.perf_counter() - t0)
            assert len(got) == n, (len(got), n)
            t0 = time.perf_counter()
            store_list(store)
            store_times.append(time.perf_counter() - t0)
        finally:
            store.close()
        t0 = time.perf_counter()
        got = plain_list()
        plain_times.append(time.perf_counter() - t0)
        assert len(got) == n
    shutil.rmtree(root)
    shutil.rmtree(plain)
    return {"n": n, "store": statistics.median(store_times), "store_first": statistics.median(first_times),
            "plain": statistics.median(plain_times)}


# ---------------------------------------------------------------- output
def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = ("benchmark", "store", "plain dir", "store/plain", "better")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contrib.bench.store_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000, help="sessions in the list benchmark (default 1000)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and calls (finishes in < 30 s)")
    ap.add_argument("--repeats", type=int, help="repeats per number (default 5, quick 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", help="work directory (default: a new temporary directory, removed after)")
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    calls = 300 if args.quick else 2000
    reopens = 10 if args.quick else 40
    started = time.perf_counter()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sessionfs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        sid, files = session_files(args.seed, 0)
        metas = many_metadata(args.sessions, args.seed + 1)
        print(f"generated one 2-hour session ({len(files)} files, {sum(map(len, files.values())) / 1e6:.1f} MB) "
              f"and {len(metas)} sessions' metadata in {time.perf_counter() - t0:.1f} s; "
              f"{repeats} repeats per number, work dir {work}\n", flush=True)
        ing = bench_ingest(work, sid, files, repeats)
        meta = bench_metadata(work, sid, files, repeats, calls, reopens)
        lst = bench_list(work, metas, repeats)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    mb = 1e6
    rows = [
        (f"ingest 2-h session ({ing['bytes'] / mb:.1f} MB, {ing['files']} files) MB/s",
         f"{ing['store'] / mb:.1f}", f"{ing['plain'] / mb:.1f}", f"{ing['store'] / ing['plain']:.2f}x", "higher"),
        ("load_metadata p50, warm", fmt_time(meta["store_p50"]), fmt_time(meta["plain_p50"]),
         f"{meta['store_p50'] / meta['plain_p50']:.2f}x", "lower"),
        ("load_metadata p99, warm", fmt_time(meta["store_p99"]), fmt_time(meta["plain_p99"]),
         f"{meta['store_p99'] / meta['plain_p99']:.2f}x", "lower"),
        ("load_metadata p50, first call after reopen", fmt_time(meta["store_first_p50"]),
         fmt_time(meta["plain_first"]), f"{meta['store_first_p50'] / meta['plain_first']:.2f}x", "lower"),
        ("load_metadata p99, first call after reopen", fmt_time(meta["store_first_p99"]),
         fmt_time(meta["plain_first"]), f"{meta['store_first_p99'] / meta['plain_first']:.2f}x", "lower"),
        (f"list {lst['n']} sessions (query + read each metadata)", fmt_time(lst["store"]), fmt_time(lst["plain"]),
         f"{lst['store'] / lst['plain']:.2f}x", "lower"),
        (f"list {lst['n']} sessions, first after reopen", fmt_time(lst["store_first"]), fmt_time(lst["plain"]),
         f"{lst['store_first'] / lst['plain']:.2f}x", "lower"),
    ]
    print(table(rows))
    print(f"\nstore size after ingest: {ing['stored_bytes'] / mb:.1f} MB in packs for {ing['bytes'] / mb:.1f} MB "
          f"of files ({1 - ing['stored_bytes'] / ing['bytes']:.0%} saved; catalog not counted). "
          f"Medians over {repeats} repeats; total {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
