"""Kill a Node recording (SessionStorage appends) at random points, N times, and check what survived.

    python contrib/tauri/bench/kill_runs.py [--runs 50] [--seed 1] [--workdir DIR]
    python contrib/tauri/bench/kill_runs.py --build DIR --mount MNT --store STORE --runs 10

The first form builds contrib/tauri in a scratch copy and mounts a fresh store; the second
uses a build and a mount that exist (tests/test_clients.py runs it so, with 10 runs).

Each run starts dist/bench/kill-recorder.js on one session: it recovers what the previous
run left (recoverSession), appends screenshots (an audio segment with every third) in
bursts, flushes, prints "flushed <screenshots> <audio>", and is SIGKILLed after a random
0.2-1.5 s. Then, reading the files through the mount: metadata.json and every chunk file
parse (nothing torn), the manifest lists at least every flushed append, and the records
are the ones appended, in order, none missing. At the end one more run only recovers, and
the Python SessionStore (the store opened read-only beside the mount) loads the whole
session with every flushed record and no temporary file is left. Prints a JSON summary;
exits 1 with the first violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from store.engine.store import Store  # noqa: E402
from store.services.sessions import SessionStore  # noqa: E402

SESSION = "killed-recording"
KINDS = (("screenshots", "screenshots", "screenshots", "s-"), ("audioSegments", "audio-segments", "segments", "a-"))
TMP = re.compile(r"^\..+\.tmp$")


class Violation(AssertionError):
    pass


def check_files(session_dir: Path, flushed: tuple[int, int]) -> dict:
    """What a reader finds after a kill: nothing torn, every flushed record listed, in order."""
    try:
        meta = orjson.loads((session_dir / "metadata.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise Violation(f"metadata.json unreadable after a kill: {exc}") from None
    counts = {}
    temporary = 0
    for (field, directory, key, prefix), least in zip(KINDS, flushed):
        count = meta["chunks"][field]["count"]
        records: list = []
        names = sorted(os.listdir(session_dir / directory)) if (session_dir / directory).is_dir() else []
        for name in names:
            if TMP.match(name):
                temporary += 1
                continue
            try:
                chunk = orjson.loads((session_dir / directory / name).read_bytes())
            except orjson.JSONDecodeError as exc:
                raise Violation(f"{directory}/{name}: torn or invalid JSON: {exc}") from None
            records += chunk[key]
        ids = [r["id"] for r in records]
        if count < least:
            raise Violation(f"{field}: the manifest lists {count}, {least} were flushed")
        if ids != [f"{prefix}{i}" for i in range(len(ids))] or len(ids) < count:
            raise Violation(f"{field}: records {ids[:3]}...{ids[-3:]} ({len(ids)}), manifest count {count}")
        counts[field] = {"listed": count, "inFiles": len(ids)}
    return {"counts": counts, "temporary": temporary}


def flushed_counts(stdout: str, before: tuple[int, int]) -> tuple[int, int]:
    """The counts of the last "flushed" line; ``before`` when the run was killed before printing one."""
    lines = [line.split() for line in stdout.splitlines() if line.startswith("flushed ")]
    return (int(lines[-1][1]), int(lines[-1][2])) if lines else before


def recorder(build: Path, mnt: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["node", str(build / "dist" / "bench" / "kill-recorder.js"), str(mnt), SESSION, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def until_recording(proc: subprocess.Popen) -> str:
    """The recorder's output up to its first "flushed" line (recovery done, recording starts).
    Read a byte at a time from the pipe, so that nothing is buffered past what communicate() reads."""
    out = b""
    while not re.search(rb"(^|\n)flushed [^\n]*\n", out):
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            break
        out += byte
    return out.decode()


def run(build: Path, mnt: Path, store: Path, runs: int, rng: random.Random) -> dict:
    session_dir = mnt / "sessions" / SESSION
    flushed = (0, 0)
    summary = {"runs": runs, "killedAfterFlushes": [], "recovered": [0, 0], "temporaryLeftByKills": 0}
    for i in range(runs):
        proc = recorder(build, mnt)
        head = until_recording(proc)
        time.sleep(rng.uniform(0.05, 1.2))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        out, err = head + out.decode(), err.decode()
        if proc.returncode != -signal.SIGKILL:
            raise Violation(f"run {i}: the recorder exited {proc.returncode} before the kill:\n{err}")
        for line in out.splitlines():
            if line.startswith("recovered "):
                summary["recovered"] = [a + int(b) for a, b in zip(summary["recovered"], line.split()[1:])]
        now = flushed_counts(out, flushed)
        if now < flushed:
            raise Violation(f"run {i}: started from {now}, but {flushed} were flushed before")
        flushed = now
        summary["killedAfterFlushes"].append(sum(1 for line in out.splitlines() if line.startswith("flushed ")))
        summary["temporaryLeftByKills"] += check_files(session_dir, flushed)["temporary"]
    proc = recorder(build, mnt, "--recover-only")
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise Violation(f"recovery run failed ({proc.returncode}):\n{err.decode()}")
    final = check_files(session_dir, flushed)
    if final["temporary"]:
        raise Violation(f"{final['temporary']} temporary files left after recoverSession")
    with_store = Store.open(store, readonly=True)
    try:
        full = SessionStore(with_store).load_full_session(SESSION)
    finally:
        with_store.close()
    shots = [r["id"] for r in full["screenshots"]]
    if len(shots) < flushed[0] or shots != [f"s-{i}" for i in range(len(shots))]:
        raise Violation(f"Python load_full_session: {len(shots)} screenshots, {flushed[0]} flushed")
    summary.update(flushedScreenshots=flushed[0], flushedAudioSegments=flushed[1],
                   finalScreenshots=len(shots), finalAudioSegments=len(full["audioSegments"]))
    return summary


def build_and_mount(work: Path) -> tuple[Path, Path, Path]:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import build_reader, cli  # the listing benchmark's helpers
    build = build_reader(work)
    store, mnt = work / "store", work / "mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    cli("mount", str(store), str(mnt))
    return build, mnt, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--build", type=Path, help="a built contrib/tauri (dist/ present)")
    parser.add_argument("--mount", type=Path, help="a sessionfs mountpoint (with --build and --store)")
    parser.add_argument("--store", type=Path)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    own = args.mount is None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill-runs-"))
    if own:
        build, mnt, store = build_and_mount(work)
    else:
        build, mnt, store = args.build, args.mount, args.store
    started = time.monotonic()
    try:
        summary = run(build, mnt, store, args.runs, random.Random(seed))
    except Violation as exc:
        print(f"FAILED (seed {seed}): {exc}", file=sys.stderr)
        return 1
    finally:
        if own:
            subprocess.run([sys.executable, "-m", "store.cli", "umount", str(mnt)], cwd=ROOT, capture_output=True)
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
    summary.update(seed=seed, seconds=round(time.monotonic() - started, 1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
