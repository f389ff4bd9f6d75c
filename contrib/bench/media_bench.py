"""Storage against peers on the realistic corpus, one row per media kind, whole directories.

    python -m contrib.bench.media_bench [--sessions N] [--dir DIR] [--json OUT]

The corpus is ``generate_session(profile="realistic")`` (espeak-ng speech over microphone noise,
Pillow screenshots of real text): its session JSON (split as the store lays it out), its PNGs
and its WAVs go to three trees, and a fourth holds them all. Each tree is stored by:

- sessionfs as a new user would: ``Store.write_files``, then ``sessionfs compress`` and
  ``sessionfs gc --grace 0``; counted: the whole store directory (packs, catalog with its
  search index, everything);
- borg (``--compression zstd,3``) and restic (its default compression): the whole repository;
- JuiceFS (``--compress zstd``, file bucket, SQLite metadata): bucket plus metadata.

It prints a table with each peer's bytes and sessionfs's share of borg's; ``--report FILE``
also puts it in FILE's section ``SECTION`` (replacing that section's previous table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from contrib.bench import peers
from contrib.corpus import generate_session
from store import Store
from store.core.layout import split_session

KINDS = ("json", "png", "wav")
JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
SECTION = "## Storage by media kind (realistic corpus, whole directories)"


def write_corpus(root: Path, sessions: int, seed: int) -> dict[str, int]:
    """Trees root/<kind>/ and root/all/ of ``sessions`` realistic sessions; logical bytes per tree."""
    sizes = dict.fromkeys((*KINDS, "all"), 0)
    for i in range(sessions):
        session, attachments = generate_session(seed, i, profile="realistic")
        files = {f"{session['id']}/{path}": orjson.dumps(value, option=JSON_OPTS)
                 for path, value in split_session(session).items()}
        files.update({f"{session['id']}/attachments/{name}": blob for name, blob in attachments.items()})
        for rel, data in files.items():
            kind = rel.rsplit(".", 1)[-1]
            for tree in (kind, "all"):
                path = root / tree / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                sizes[tree] += len(data)
    return sizes


def sessionfs_store(src: Path, work: Path) -> dict:
    """The tree under sessions/ of a new store, compressed and collected; the whole directory."""
    root = work / "store"
    Store.init(root)
    with Store.open(root) as store:
        for dirpath, _, names in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            store.write_files({f"sessions/{rel / n}": (Path(dirpath) / n).read_bytes() for n in names})
        store.flush()
    cli = [sys.executable, "-m", "store.cli"]
    subprocess.run([*cli, "compress", str(root)], check=True, capture_output=True)
    subprocess.run([*cli, "gc", "--grace", "0", str(root)], check=True, capture_output=True)
    catalog = sum(p.stat().st_size for p in root.glob("catalog.db*"))
    return {"bytes": peers.tree_size(root)[1], "catalog": catalog}


def measure(tree: Path, work: Path) -> dict:
    out = {}
    for name, fn in (("sessionfs", sessionfs_store), ("borg", peers.borg_ingest), ("restic", peers.restic_ingest),
                     ("juicefs", peers.juicefs_ingest)):
        sub = work / name
        sub.mkdir()
        try:
            out[name] = fn(tree, sub)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            out[name] = {"error": str(exc)}
        shutil.rmtree(sub, ignore_errors=True)
    return out


def table(logical: dict[str, int], results: dict[str, dict]) -> str:
    def cell(r: dict) -> str:
        return f"{r['bytes'] / 1e6:,.2f}" if "bytes" in r else "failed"
    lines = ["| kind | logical MB | sessionfs MB (catalog) | borg MB | restic MB | JuiceFS MB | sessionfs / borg |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, r in results.items():
        s, b = r["sessionfs"], r["borg"]
        ratio = f"{s['bytes'] / b['bytes']:.3f}" if "bytes" in s and "bytes" in b else "-"
        lines.append(f"| {kind} | {logical[kind] / 1e6:,.2f} | {cell(s)} ({s.get('catalog', 0) / 1e6:.2f}) | "
                     f"{cell(b)} | {cell(r['restic'])} | {cell(r['juicefs'])} | {ratio} |")
    return "\n".join(lines)


def put_section(report: Path, body: str, section: str = SECTION) -> None:
    """Replace (or append) ``section`` (a "## " heading) of the markdown file ``report`` with ``body``."""
    text = report.read_text() if report.exists() else ""
    head, found, tail = text.partition(section)
    rest = tail[tail.find("\n## "):] if found and "\n## " in tail else ""
    report.write_text(f"{head.rstrip()}\n\n{section}\n\n{body}\n{rest}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--report", type=Path, default=None, help="also put the table in this markdown file")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="media-bench-", dir=args.dir))
    try:
        logical = write_corpus(work / "corpus", args.sessions, args.seed)
        results = {kind: measure(work / "corpus" / kind, work / f"run-{kind}")
                   for kind in (*KINDS, "all") if (work / "corpus" / kind).is_dir() and not os.mkdir(work / f"run-{kind}")}
        text = table(logical, results)
        print(text)
        if args.report:
            put_section(args.report, f"{args.sessions} sessions of profile \"realistic\" (seed {args.seed}); "
                        f"`python -m contrib.bench.media_bench --sessions {args.sessions}`.\n\n{text}")
        if args.json:
            args.json.write_text(json.dumps({"sessions": args.sessions, "logical": logical, "results": results},
                                            indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
