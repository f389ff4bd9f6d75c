"""Stores written by an older commit open and read byte for byte as that commit showed them.

``tests/fixtures/store-format-1/`` was written and unmounted cleanly by the commit its
``manifest.json`` names (``made_by``; ``tests/fixtures/make_store_format_1.py`` made it):
sessions of the session API, an imported legacy session, files made through a mount
(symlinks, a hard link, xattrs, an empty and a sparse file, a non-UTF-8 name),
dictionary-coded blocks, a search index. ``store-format-1-crashed/`` is the same store
after a SIGKILL of its daemon with one closed file still staged. Each test works on a copy
(the committed fixture never changes), reads every path through a real mount and through
``sessionfs ls``/``cat``, and compares it with the manifest, which was computed through a
mount of the writing commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks import mount_manifest
from mounting import FUSE_AVAILABLE, Mount, sessionfs
from store.engine.overlay import MARKER_SUFFIX, boot_id

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def copy_fixture(name: str, tmp_path: Path) -> tuple[Path, dict]:
    """A private copy of a fixture's store, and its manifest."""
    store = tmp_path / "store"
    shutil.copytree(FIXTURES / name / "store", store, symlinks=True)
    (store / "staging").mkdir(mode=0o700, exist_ok=True)        # git keeps no empty directory
    os.chmod(store, 0o700)
    return store, json.loads((FIXTURES / name / "manifest.json").read_text())


def assert_as_manifest(actual: dict, expected: dict, how: str) -> None:
    wrong = sorted(p for p in expected.keys() | actual.keys() if actual.get(p) != expected.get(p))
    assert not wrong, f"{len(wrong)} paths read through {how} differ from the manifest:\n" + "\n".join(
        f"  {p!r}\n    manifest: {expected.get(p)}\n    read:     {actual.get(p)}" for p in wrong[:10])


def cli_manifest(store: Path, manifest: dict) -> dict:
    """The store's own tree read with ``sessionfs ls -l --json`` and one ``sessionfs cat``, in the
    manifest's terms (xattrs are not shown by ls: the manifest's are kept)."""
    out: dict = {}
    files: list[tuple[str, int]] = []
    dirs = [""]
    while dirs:
        top = dirs.pop()
        for e in json.loads(sessionfs("ls", str(store), top, "-l", "--json").stdout):
            path = f"{top}/{e['name']}" if top else e["name"]
            entry = {"type": e["type"], "mode": f"{int(e['mode'], 8):04o}"}
            if e["type"] == "symlink":
                entry["target"] = e["target"]
            else:
                entry["xattrs"] = manifest.get(path, {}).get("xattrs")
            if e["type"] == "file":
                entry.update(size=e["size"], nlink=e["nlink"], mtime_ns=e["mtime_ns"])
                files.append((path, e["size"]))
            elif e["type"] == "dir":
                dirs.append(path)
            out[path] = entry
    data = subprocess.run([sys.executable, "-m", "store.cli", "cat", str(store), *(p for p, _ in files)],
                          capture_output=True, timeout=120, check=True).stdout
    assert len(data) == sum(size for _, size in files), "sessionfs cat wrote more or fewer bytes than ls -l listed"
    at = 0
    for path, size in files:
        out[path]["sha256"] = hashlib.sha256(data[at:at + size]).hexdigest()
        at += size
    return out


def stored_part(manifest: dict, listed: dict) -> dict:
    """The manifest's paths under the top-level names the store itself lists (not the views)."""
    tops = {p for p in listed if "/" not in p}
    return {p: e for p, e in manifest.items() if p.split("/", 1)[0] in tops}


def test_format_1_reads_byte_for_byte_through_a_mount_and_the_cli(tmp_path):
    store, manifest = copy_fixture("store-format-1", tmp_path)
    expected, word, found = manifest["paths"], manifest["search"]["word"], manifest["search"]["session"]

    listed = cli_manifest(store, expected)
    assert_as_manifest(listed, stored_part(expected, listed), "sessionfs ls/cat")
    verify = sessionfs("verify", "--data", str(store))          # read-only: not upgraded yet
    assert verify.stdout.startswith("warning: format: catalog.db has format version 1; it is upgraded to 2 "), \
        verify.stdout
    assert verify.stdout.endswith("0 errors, 1 warning\n"), verify.stdout
    hits = json.loads(sessionfs("search", str(store), word, "--json").stdout)
    assert [h["session_id"] for h in hits] == [found]

    mount = Mount(store, tmp_path / "mnt").start()
    try:
        assert_as_manifest(mount_manifest(mount.path), expected, "a mount")
        assert os.listdir(mount.path / "search" / word) == [found]
        new = mount.sessions / found / "written-after-upgrade.txt"
        new.write_bytes(b"written by the current code\n")
        mount.remount()
        assert new.read_bytes() == b"written by the current code\n"
        after = mount_manifest(mount.path)
        del after[f"sessions/{found}/written-after-upgrade.txt"]
        assert_as_manifest(after, expected, "a mount after a write and a remount")
    finally:
        mount.cleanup()
    assert os.listdir(store / "staging") == []
    verify = sessionfs("verify", "--data", str(store))          # upgraded by the mount
    assert "no problems" in verify.stdout, verify.stdout


def test_a_file_staged_when_the_old_daemon_was_killed_is_replayed(tmp_path):
    store, manifest = copy_fixture("store-format-1-crashed", tmp_path)
    markers = [p for p in (store / "staging").iterdir() if p.name.endswith(MARKER_SUFFIX)]
    assert len(markers) == 1, "the fixture holds one closed, uncommitted file"
    for marker in markers:       # replay trusts markers of this boot only: the crash was "just now"
        marker.write_bytes(json.dumps(dict(json.loads(marker.read_bytes()), boot_id=boot_id())).encode())

    mount = Mount(store, tmp_path / "mnt").start()
    try:
        assert_as_manifest(mount_manifest(mount.path), manifest["paths"], "a mount after replay")
    finally:
        mount.cleanup()
    assert os.listdir(store / "staging") == []
    verify = sessionfs("verify", "--data", str(store))
    assert "no problems" in verify.stdout, verify.stdout
