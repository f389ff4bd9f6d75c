"""A shared store's set-up (``sessionfs init --objects s3://... --catalog postgresql://...``) on a
real SeaweedFS and PostgreSQL: the first directory creates the store, a second joins it, one
naming other objects is refused, and no directory holds a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pg_server import pg_url, postgres  # noqa: F401  (fixtures)
from s3_server import s3_url, seaweed  # noqa: F401  (fixtures)


def sessionfs(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "store.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def env(seaweed):  # noqa: F811
    return {**os.environ, **seaweed.env, "AWS_ENDPOINT_URL": seaweed.endpoint}


def test_init_creates_then_joins_and_refuses_other_objects(tmp_path, env, s3_url, pg_url):  # noqa: F811
    first = sessionfs("init", str(tmp_path / "a"), "--objects", s3_url, "--catalog", pg_url, env=env)
    assert first.returncode == 0, first.stderr
    second = sessionfs("init", str(tmp_path / "b"), "--objects", s3_url, "--catalog", pg_url, env=env)
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / d / "config.json").read_text()) for d in "ab")
    assert a["store_id"] == b["store_id"] and a["writer_id"] != b["writer_id"]
    assert a["endpoint"] == env["AWS_ENDPOINT_URL"]
    other = sessionfs("init", str(tmp_path / "c"), "--objects", s3_url + "-other", "--catalog", pg_url, env=env)
    assert other.returncode != 0 and "give that --objects to join it" in other.stderr
    assert not (tmp_path / "c").exists()
    secrets = (env["AWS_SECRET_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"])
    for d in "ab":
        for path in (tmp_path / d).rglob("*"):
            if path.is_file():
                assert not any(s.encode() in path.read_bytes() for s in secrets), path
    with_password = pg_url.replace("@", ":hunter2@", 1)
    refused = sessionfs("init", str(tmp_path / "d"), "--objects", s3_url, "--catalog", with_password, env=env)
    assert refused.returncode != 0 and "PGPASSWORD" in refused.stderr and "hunter2" not in refused.stderr


def test_every_command_works_on_a_shared_store(tmp_path, env, s3_url, pg_url):  # noqa: F811
    root = str(tmp_path / "a")
    assert sessionfs("init", root, "--objects", s3_url, "--catalog", pg_url, env=env).returncode == 0
    legacy = Path(__file__).parent / "fixtures" / "legacy-store"
    sid = "6f1c2a4e-3b7d-4c1e-9a55-2d8e0f4b7c11"
    for args in (["import", root, str(legacy)], ["verify", root, "--data"], ["gc", root], ["compress", root],
                 ["stats", root, "--json"]):
        done = sessionfs(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    found = sessionfs("search", root, '"auth middleware"', env=env)
    assert found.returncode == 0 and sid in found.stdout
    listed = sessionfs("ls", root, "sessions", env=env)
    assert sid in listed.stdout.split()
