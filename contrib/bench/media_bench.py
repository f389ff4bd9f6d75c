"""Storage against peers on the realistic corpus, one row per media kind and per session type,
whole directories.

    python -m contrib.bench.media_bench [--sessions N] [--dir DIR] [--json OUT] [--report FILE]

The corpus is ``generate_session(profile="realistic")`` (espeak-ng speech over microphone noise,
Pillow screenshots of real text): its session JSON (split as the store lays it out), its PNGs
and its WAVs go to three trees, and a fourth holds them all. Two more trees are session types
(``SESSION_TYPES``): *speech-heavy* (the JSON and every WAV) and *screenshot-heavy* (the JSON,
every PNG and one WAV in WAV_SHARE, as the issue's screenshot sessions: "PNG, JSON, some WAV").
Each tree is stored by:

- sessionfs as a new user would: ``Store.write_files``, then ``sessionfs compress`` and
  ``sessionfs gc --grace 0``; counted: the whole store directory (packs, catalog with its
  search index, everything);
- borg (``--compression zstd,3``) and restic (its default compression): the whole repository;
- JuiceFS (``--compress zstd``, file bucket, SQLite metadata): bucket plus metadata.

It prints a table with each peer's bytes and sessionfs's share of borg's, against the goals
for the session types (GOALS); ``--json`` keeps the results (``bench/media.json``: ``report.py``
renders the report's section from it, ``section``), ``--report FILE`` also puts the section in FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from contrib.bench import peers
from contrib.corpus import generate_session
from store import Store
from store.core.layout import split_session

KINDS = ("json", "png", "wav")
SESSION_TYPES = ("speech-heavy", "screenshot-heavy")
TREES = (*KINDS, "all", *SESSION_TYPES)
#: sessionfs / borg, catalog included, that the session types must not exceed (issue 17).
GOALS = {"speech-heavy": 0.85, "screenshot-heavy": 1.0}
#: A screenshot-heavy session keeps one WAV in this many.
WAV_SHARE = 8
JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
SECTION = "## Storage by media kind and session type (realistic corpus, whole directories)"


def trees_of(kind: str, wav_number: int) -> tuple[str, ...]:
    """The trees a file of ``kind`` goes to (``wav_number``: how many WAVs came before it)."""
    if kind == "json":
        return kind, "all", *SESSION_TYPES
    if kind == "png":
        return kind, "all", "screenshot-heavy"
    if kind == "wav" and wav_number % WAV_SHARE == 0:
        return kind, "all", *SESSION_TYPES
    return kind, "all", "speech-heavy"


def write_corpus(root: Path, sessions: int, seed: int) -> dict[str, int]:
    """The trees (TREES) of ``sessions`` realistic sessions under root; logical bytes per tree."""
    sizes = dict.fromkeys(TREES, 0)
    wavs = 0
    for i in range(sessions):
        session, attachments = generate_session(seed, i, profile="realistic")
        files = {f"{session['id']}/{path}": orjson.dumps(value, option=JSON_OPTS)
                 for path, value in split_session(session).items()}
        files.update({f"{session['id']}/attachments/{name}": blob for name, blob in sorted(attachments.items())})
        for rel, data in files.items():
            kind = rel.rsplit(".", 1)[-1]
            for tree in trees_of(kind, wavs):
                path = root / tree / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                sizes[tree] += len(data)
            wavs += kind == "wav"
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
    lines = ["| tree | logical MB | sessionfs MB (catalog) | borg MB | restic MB | JuiceFS MB | sessionfs / borg "
             "| goal |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for tree, r in results.items():
        s, b = r["sessionfs"], r["borg"]
        ratio = s["bytes"] / b["bytes"] if "bytes" in s and "bytes" in b else None
        goal = GOALS.get(tree)
        met = ratio is not None and goal is not None and ratio <= goal
        verdict = "" if goal is None else f"<= {goal:.2f}: {'met' if met else 'NOT met'}"
        lines.append(f"| {tree} | {logical[tree] / 1e6:,.2f} | {cell(s)} ({s.get('catalog', 0) / 1e6:.2f}) | "
                     f"{cell(b)} | {cell(r['restic'])} | {cell(r['juicefs'])} | "
                     f"{'-' if ratio is None else f'{ratio:.3f}'} | {verdict} |")
    return "\n".join(lines)


def section(data: dict) -> str:
    """The report's section (SECTION and its body) from the results ``--json`` keeps."""
    return (f"{SECTION}\n\n{data['sessions']} sessions of profile \"realistic\" (seed {data['seed']}); "
            f"`python -m contrib.bench.media_bench --sessions {data['sessions']} --json bench/media.json`, "
            f"{data.get('finished', '?')}.\n\n{table(data['logical'], data['results'])}\n\n"
            "sessionfs: after `sessionfs compress` and `sessionfs gc --grace 0`, the whole store directory, the "
            "catalog (with its full-text index) in parentheses. borg `zstd,3`, restic (default compression), "
            "JuiceFS (`--compress zstd`, file bucket + SQLite metadata): the whole repository or bucket plus "
            "metadata. Session types: speech-heavy = the sessions' JSON and every WAV; screenshot-heavy = the "
            f"JSON, every PNG and one WAV in {WAV_SHARE}. WAV blocks are coded with FLAC.\n")


def put_section(report: Path, text: str) -> None:
    """Replace (or append) the section of the markdown file ``report`` that ``text`` heads (its
    first line, as ``section`` writes it) with ``text``."""
    old = report.read_text() if report.exists() else ""
    head, found, tail = old.partition(text.partition("\n")[0])
    rest = tail[tail.find("\n## "):] if found and "\n## " in tail else ""
    report.write_text(f"{head.rstrip()}\n\n{text.rstrip()}\n{rest}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--report", type=Path, default=None, help="also put the section in this markdown file")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="media-bench-", dir=args.dir))
    try:
        logical = write_corpus(work / "corpus", args.sessions, args.seed)
        results = {}
        for tree in TREES:
            if (work / "corpus" / tree).is_dir():
                os.mkdir(work / f"run-{tree}")
                results[tree] = measure(work / "corpus" / tree, work / f"run-{tree}")
                print(f"{tree}: done", file=sys.stderr)
        data = {"sessions": args.sessions, "seed": args.seed, "finished": time.strftime("%Y-%m-%d %H:%M UTC",
                time.gmtime()), "logical": logical, "results": results}
        print(table(logical, results))
        if args.json:
            args.json.write_text(json.dumps(data, indent=1) + "\n")
        if args.report:
            put_section(args.report, section(data))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
