"""Stored bytes after background compression vs zstd -3 and zstd -19 of each file on its own.

    python -m contrib.bench.compress_bench [--sessions N] [--profile P] [--dir DIR] [--keep]

Generates N (default 3) 2-hour sessions (``contrib.corpus``, profile "full": ~5.4 MB
of JSON in 14 files and ~14 MB of PNG/WAV attachments in ~160 files each), saves them
through the session API into a fresh store, and exports every file back to a plain
directory (the same bytes the mount shows). Then, in the same run:

- ``zstd -3`` and ``zstd -19`` (the zstd CLI) of each file on its own;
- sessionfs as written (blocks at level 3), then after the background compressor
  (the daemon's ``Compressor`` thread, cold age 0, full CPU share, run until nothing
  is pending) and a gc pass (grace 0: the old level-3 frames left in packs that still
  hold other blocks are dead bytes; in the daemon the background gc reclaims them);
- the same for the JSON files alone (a second store), so the attachments' dedup does
  not hide how the JSON fares.

sessionfs's stored bytes are the pack bytes plus the trained dictionaries (kept in the
catalog); the catalog itself (inodes, chunk lists, indexes: metadata every filesystem
has) is shown apart.

Why sessionfs stores less than zstd -19 of each file (see ``store.recompress``):
dedup (identical screenshots and audio across a session are stored once), 1 MiB
blocks of neighbouring chunks (a big JSON file compresses like the whole file), level
19 for cold data, and a dictionary trained from the store's own small files for the
small JSON files (metadata.json, the large-object files), which compressed alone lack
the context that makes JSON compress well.

Measured (this machine, 3 sessions, profile "full"; bytes):

    (filled in from a run: see the table printed by the script)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contrib.corpus import generate_session
from store import Store
from store.gc import GcOptions, collect
from store.recompress import Compressor, CompressOptions, pending
from store.sessions import SessionStore


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def tree_bytes(root: Path, suffix: str = "") -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name.endswith(suffix))


def zstd_each(src: Path, out: Path, level: int) -> tuple[int, float]:
    """zstd -LEVEL of every file of ``src`` on its own; (compressed bytes, seconds)."""
    files = sorted(str(p) for p in src.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    for i in range(0, len(files), 200):
        subprocess.run(["zstd", f"-{level}", "-q", "-f", "--output-dir-mirror", str(out), "--", *files[i:i + 200]],
                       check=True)
    return tree_bytes(out, ".zst"), time.perf_counter() - t0


def store_bytes(store: Store) -> dict:
    s = store.statistics()
    m = s.maintenance
    catalog = sum(p.stat().st_size for p in store.root.glob("catalog.db*"))
    return {"packs": s.stored_bytes, "dictionaries": m.dictionary_bytes, "stored": s.stored_bytes + m.dictionary_bytes,
            "logical": s.logical_bytes, "catalog": catalog}


def build(root: Path, sessions: list[tuple[dict, dict]], attachments: bool) -> Store:
    Store.init(root)
    store = Store.open(root, background_compress=True, cold_age=0.0, cpu_share=1.0, recompress_level=19)
    store.background.compressor.options.quiet = 0.0
    store.background.compressor.poll = 0.2
    ss = SessionStore(store)
    for session, files in sessions:
        ss.save_full_session(session)
        if attachments:
            for name, data in files.items():
                aid, ext = name.rsplit(".", 1)
                ss.save_attachment(session["id"], aid, ext, data)
    store.flush()
    return store


def export(store: Store, out: Path) -> None:
    db = store.catalog.reader()
    for (ino,) in db.execute("SELECT id FROM inodes WHERE mode & 61440 = 32768").fetchall():
        path = out / store.catalog.path_of(ino)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.read_all(ino))


def wait_compressed(store: Store, timeout: float = 3600) -> float:
    t0 = time.perf_counter()
    while pending(store.catalog.reader(), 0.0)[0] and time.perf_counter() - t0 < timeout:
        time.sleep(0.2)
    return time.perf_counter() - t0


def measure(name: str, root: Path, sessions, attachments: bool) -> dict:
    t0 = time.perf_counter()
    store = build(root / "store", sessions, attachments)
    ingest_s = time.perf_counter() - t0
    written = store_bytes(store)
    plain = root / "plain"
    export(store, plain)
    compress_s = wait_compressed(store)
    compressed = store_bytes(store)
    compressor: Compressor = store.background.compressor
    collect(store, GcOptions(grace=0))
    after_gc = store_bytes(store)
    stats = compressor.statistics()
    store.close()
    z3, z3_s = zstd_each(plain, root / "z3", 3)
    z19, z19_s = zstd_each(plain, root / "z19", 19)
    return dict(name=name, files=sum(1 for p in plain.rglob("*") if p.is_file()), logical=tree_bytes(plain),
                zstd3=z3, zstd3_s=z3_s, zstd19=z19, zstd19_s=z19_s, written=written, compressed=compressed,
                after_gc=after_gc, ingest_s=ingest_s, compress_s=compress_s, compressor=stats)


def print_table(results: list[dict]) -> None:
    print()
    header = f"{'':<40}" + "".join(f"{r['name']:>24}" for r in results)
    print(header)
    print("-" * len(header))

    def row(label: str, values: list[int], ref: list[int] | None = None) -> None:
        cells = []
        for i, v in enumerate(values):
            ratio = f" {results[i]['logical'] / v:5.1f}x" if v else ""
            cells.append(f"{human(v) + ratio:>24}")
        print(f"{label:<40}" + "".join(cells))

    row("logical (files as the mount shows them)", [r["logical"] for r in results])
    row("zstd -3, each file on its own", [r["zstd3"] for r in results])
    row("zstd -19, each file on its own", [r["zstd19"] for r in results])
    row("sessionfs as written (level 3)", [r["written"]["stored"] for r in results])
    row("sessionfs after background compression", [r["compressed"]["stored"] for r in results])
    row("  ... and gc (what the daemon converges to)", [r["after_gc"]["stored"] for r in results])
    row("  of which trained dictionaries", [r["after_gc"]["dictionaries"] for r in results])
    row("  catalog.db (metadata, not counted)", [r["after_gc"]["catalog"] for r in results])
    print()
    for r in results:
        final = r["after_gc"]["stored"]
        print(f"{r['name']}: {r['files']} files; sessionfs / zstd -19 = {final / r['zstd19']:.3f}, "
              f"sessionfs / zstd -3 = {final / r['zstd3']:.3f}; ingest {r['ingest_s']:.1f} s, background "
              f"compression {r['compress_s']:.1f} s ({r['compressor']['busy_seconds']:.1f} s CPU in the compressor), "
              f"zstd -19 CLI {r['zstd19_s']:.1f} s")
        ok = final < r["zstd3"] and final < r["zstd19"]
        print(f"  {'OK' if ok else 'NOT OK'}: sessionfs stores {'less' if ok else 'MORE'} than both")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=3)
    p.add_argument("--profile", default="full")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    if shutil.which("zstd") is None:
        print("compress_bench: the zstd command is needed (apt install zstd)", file=sys.stderr)
        return 2
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sessionfs-compress-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        sessions = [generate_session(args.seed, i, profile=args.profile) for i in range(args.sessions)]
        print(f"generated {args.sessions} sessions (profile {args.profile}) in {time.perf_counter() - t0:.1f} s")
        results = [measure("everything", work / "all", sessions, True),
                   measure("JSON files only", work / "json", sessions, False)]
        print_table(results)
        ok = all(r["after_gc"]["stored"] < min(r["zstd3"], r["zstd19"]) for r in results)
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
