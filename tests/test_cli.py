"""Tests of the ``sessionfs`` command line, run as a real process (``python -m store.cli``)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from store import Store
from store.cli import main as cli
from store.core.units import human_bytes

ROOT = Path(__file__).resolve().parents[1]
S1 = "00000000-0000-4000-8000-000000000001"
S2 = "00000000-0000-4000-8000-000000000002"
BIG = random.Random(1234).randbytes(3 * 1024 * 1024)     # incompressible, 3 MiB


def run(*args: str, check: bool | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "store.cli", *map(str, args)], capture_output=True,
                          cwd=ROOT, env=env, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sessionfs: "), err
    assert proc.stdout == b""
    return lines[0]


def metadata(sid: str, name: str) -> bytes:
    return json.dumps({"id": sid, "name": name, "status": "completed", "startTime": "2024-05-01T10:00:00Z",
                       "tags": ["demo"], "version": 1}).encode()


FILES = {
    f"sessions/{S1}/metadata.json": metadata(S1, "first"),
    f"sessions/{S1}/summary.json": json.dumps({"summary": "hello " * 200}).encode(),
    f"sessions/{S1}/attachments/a1.bin": BIG,
    f"sessions/{S2}/metadata.json": metadata(S2, "second"),
    f"sessions/{S2}/attachments/a2.bin": BIG,                  # same bytes: deduplicated
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "store"
    proc = run("init", path, check=True)
    assert b"initialized" in proc.stdout
    s = Store.open(path)
    try:
        s.write_files(FILES)
    finally:
        s.close()
    return path


# -- init -------------------------------------------------------------------------------
def test_init_creates_a_store(tmp_path):
    proc = run("init", tmp_path / "new" / "store", check=True)
    assert (tmp_path / "new" / "store" / "catalog.db").exists()
    assert proc.stderr == b""
    assert run("ls", tmp_path / "new" / "store", check=True).stdout == b"sessions\n"


def test_init_refuses_an_existing_store(store):
    line = assert_one_line_error(run("init", store))
    assert "already holds a sessionfs store" in line


def test_init_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "something").write_text("x")
    line = assert_one_line_error(run("init", tmp_path))
    assert "not empty" in line and str(tmp_path) in line
    assert not (tmp_path / "catalog.db").exists()


def test_init_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "not a directory" in assert_one_line_error(run("init", tmp_path / "f"))


# -- ls ---------------------------------------------------------------------------------
def test_ls_root_and_sessions(store):
    assert run("ls", store, check=True).stdout == b"sessions\n"
    assert run("ls", store, "sessions", check=True).stdout.decode().split() == [S1, S2]
    assert run("ls", store, f"/sessions/{S1}/", check=True).stdout.decode().split() == [
        "attachments", "metadata.json", "summary.json"]


def test_ls_long(store):
    out = run("ls", store, f"sessions/{S1}", "-l", check=True).stdout.decode().splitlines()
    assert len(out) == 3
    assert out[0].startswith("drwxr-xr-x") and out[0].endswith(" attachments")
    assert out[1].startswith("-rw-r--r--") and out[1].endswith(" metadata.json")
    size = len(FILES[f"sessions/{S1}/metadata.json"])
    assert f" {size} " in out[1]
    big = run("ls", store, f"sessions/{S1}/attachments", "-l", check=True).stdout.decode()
    assert f" {len(BIG)} " in big and big.rstrip().endswith("a1.bin")


def test_ls_json(store):
    entries = json.loads(run("ls", store, f"sessions/{S1}", "--json", check=True).stdout)
    by_name = {e["name"]: e for e in entries}
    assert set(by_name) == {"attachments", "metadata.json", "summary.json"}
    assert by_name["attachments"]["type"] == "dir"
    meta = by_name["metadata.json"]
    assert meta["type"] == "file" and meta["mode"] == "0644"
    assert meta["size"] == len(FILES[f"sessions/{S1}/metadata.json"])
    assert isinstance(meta["mtime_ns"], int) and meta["mtime"].endswith("Z")
    assert json.loads(run("ls", store, "sessions", "--json", "-l", check=True).stdout)[1]["name"] == S2


def test_ls_of_a_file_lists_the_file(store):
    entries = json.loads(run("ls", store, f"sessions/{S2}/attachments/a2.bin", "--json", check=True).stdout)
    assert [(e["name"], e["size"]) for e in entries] == [("a2.bin", len(BIG))]


def test_global_option_after_the_subcommand(store):
    assert run("ls", store, "--log-level", "DEBUG", check=True).stdout == b"sessions\n"
    assert run("--log-level", "error", "ls", store, check=True).stdout == b"sessions\n"


# -- cat --------------------------------------------------------------------------------
def test_cat_small_and_large_binary(store):
    path = f"sessions/{S1}/metadata.json"
    assert run("cat", store, path, check=True).stdout == FILES[path]
    proc = run("cat", store, f"sessions/{S2}/attachments/a2.bin", check=True)
    assert proc.stdout == BIG and proc.stderr == b""


def test_cat_several_files_concatenates(store):
    a, b = f"sessions/{S1}/metadata.json", f"sessions/{S2}/metadata.json"
    assert run("cat", store, a, b, check=True).stdout == FILES[a] + FILES[b]


def test_cat_into_a_closed_pipe_is_quiet(store):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "store.cli", "cat", str(store),
                             f"sessions/{S1}/attachments/a1.bin", f"sessions/{S2}/attachments/a2.bin"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    assert proc.stdout.read(10) == BIG[:10]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=30) in (0, 141)
    assert err == b""


def test_cat_directory_is_an_error(store):
    line = assert_one_line_error(run("cat", store, "sessions"))
    assert "sessions" in line and "directory" in line


# -- stats ------------------------------------------------------------------------------
def test_stats_json(store):
    stats = json.loads(run("stats", store, "--json", check=True).stdout)
    assert stats["files"] == len(FILES)
    assert stats["sessions"] == 2
    assert stats["logical_bytes"] == sum(len(v) for v in FILES.values())
    assert stats["referenced_bytes"] == stats["logical_bytes"]          # no holes
    assert stats["packs"] >= 1
    # The 3 MiB attachment is stored once although two files hold it.
    assert stats["unique_bytes"] < stats["logical_bytes"] - len(BIG) + 4096
    assert stats["dedup_ratio"] == pytest.approx(stats["referenced_bytes"] / stats["unique_bytes"])
    assert 1.9 < stats["dedup_ratio"] <= 2.0
    assert stats["compression_ratio"] == pytest.approx(stats["raw_block_bytes"] / stats["block_bytes"])
    assert stats["space_saving"] == pytest.approx(1 - stats["stored_bytes"] / stats["logical_bytes"])
    assert 0.4 < stats["space_saving"] < 0.55
    assert stats["stored_bytes"] >= stats["block_bytes"]
    assert {"hits", "misses", "bytes_held", "capacity_bytes"} <= set(stats["cache"])
    assert stats["queue"] is None                                        # opened read-only


def test_stats_human(store):
    out = run("stats", store, check=True).stdout.decode()
    assert "dedup ratio:" in out and "2.00x" in out
    assert "MiB" in out
    assert "sessions:" in out and "space saving:" in out


def test_human_bytes():
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024 ** 2) == "3.0 MiB"
    assert human_bytes(5 * 1024 ** 3) == "5.0 GiB"
    assert human_bytes(2 * 1024 ** 6) == "2048.0 PiB"


# -- reading beside a writer --------------------------------------------------------------
def test_reads_work_while_a_writer_holds_the_store(tmp_path):
    path = tmp_path / "s"
    run("init", path, check=True)
    writer = Store.open(path)
    try:
        writer.write_files({f"sessions/{S1}/metadata.json": metadata(S1, "live")})
        writer.settle()
        assert run("ls", path, "sessions", check=True).stdout == f"{S1}\n".encode()
        assert run("cat", path, f"sessions/{S1}/metadata.json", check=True).stdout == metadata(S1, "live")
        assert json.loads(run("stats", path, "--json", check=True).stdout)["sessions"] == 1
    finally:
        writer.close()
    assert not (path / "owner.json").exists()      # readers never touched the lock


# -- errors -----------------------------------------------------------------------------
def test_missing_store(tmp_path):
    for cmd in (["ls"], ["stats"], ["cat", None]):
        args = [cmd[0], tmp_path / "nope"] + (["x"] if len(cmd) > 1 else [])
        line = assert_one_line_error(run(*args))
        assert str(tmp_path / "nope") in line


def test_not_a_store(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    assert "not a sessionfs store" in assert_one_line_error(run("ls", tmp_path))
    assert "not a directory" in assert_one_line_error(run("stats", tmp_path / "readme.txt"))


def test_corrupt_catalog_file(tmp_path):
    (tmp_path / "catalog.db").write_bytes(b"this is not sqlite" * 100)
    assert "catalog" in assert_one_line_error(run("ls", tmp_path))


@pytest.mark.parametrize("cmd", ["ls", "cat"])
def test_missing_path_names_the_path(store, cmd):
    line = assert_one_line_error(run(cmd, store, f"sessions/{S1}/nothing-here.json"))
    assert f"sessions/{S1}/nothing-here.json" in line


def test_bad_path_is_refused(store):
    assert ".." in assert_one_line_error(run("ls", store, "sessions/../etc"))


def test_usage_errors_exit_2(store):
    proc = run("ls")
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert run().returncode == 2
    assert run("frobnicate", store).returncode == 2
    assert run("--log-level", "loud", "ls", store).returncode == 2


def test_version():
    proc = run("--version", check=True)
    assert proc.stdout.decode().startswith("sessionfs ")


# -- extension ---------------------------------------------------------------------------
def test_other_modules_register_subcommands(monkeypatch, capsys, store):
    def register(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("store", metavar="STORE")
        p.set_defaults(func=lambda args: print(f"hello {Path(args.store).name}") or 3)

    missing = EntryPoint("gone", "fusefs.no_such_module_for_test:register", cli.ENTRY_POINT_GROUP)
    installed = cli.command_entry_points()
    assert sorted(ep.value for ep in installed) == ["fusefs.cli:register", "webdav.cli:register"]
    monkeypatch.setattr(cli, "REGISTRARS", [register])
    monkeypatch.setattr(cli, "command_entry_points", lambda: [missing, *installed])
    assert cli.main(["hello", str(store)]) == 3
    assert capsys.readouterr().out == "hello store\n"
    assert cli.main(["--help"]) == 0
    assert "hello" in capsys.readouterr().out


def test_main_in_process_returns_codes(store, capsys):
    assert cli.main(["ls", str(store)]) == 0
    assert cli.main(["ls", str(store), "sessions/none"]) == 1
    assert cli.main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert "sessionfs: sessions/none: no such file or directory in the store" in err
