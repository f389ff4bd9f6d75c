"""A shared (scale-out) store for mount tests: objects on the session's SeaweedFS, the catalog
in a fresh PostgreSQL database, both new for each test.

``shared_store`` gives a ``SharedStore``; ``init(directory)`` sets up (the first time) or joins
(every later time) the store in a STORE directory, as ``sessionfs init`` does on each machine.
The S3 credentials go into this process's environment for the test, so the mounts it starts
and the stores it opens in process reach the server as a user's would.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from mounting import sessionfs

_names = itertools.count(1)
S3_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_CA_BUNDLE")


@dataclass
class SharedStore:
    objects: str
    catalog: str

    def init(self, directory: Path) -> Path:
        sessionfs("init", str(directory), "--objects", self.objects, "--catalog", self.catalog)
        return Path(directory)


def new_shared_store(request, env) -> SharedStore:
    """A new, empty shared store (a fresh key prefix and database) on the session's servers; its
    S3 credentials set in ``env`` (a ``pytest.MonkeyPatch``)."""
    weed = request.getfixturevalue("seaweed")
    pg = request.getfixturevalue("postgres")
    for name in S3_VARIABLES:
        if name in weed.env:
            env.setenv(name, weed.env[name])
    tag = f"m{next(_names)}{secrets.token_hex(3)}"
    return SharedStore(weed.url(tag), pg.create_database(tag))


@pytest.fixture
def shared_store(request, monkeypatch) -> SharedStore:
    """A new, empty shared store for the test."""
    return new_shared_store(request, monkeypatch)

STORE_KINDS = ("local", "shared")
#: Runs a test that uses ``mount`` on a local store and on a shared (S3 + PostgreSQL) one.
on_both_stores = pytest.mark.parametrize("mount", STORE_KINDS, indirect=True)


def store_dir(request, path: Path, kind: str | None = None) -> Path:
    """``path`` as a STORE directory of ``kind`` (by default, the one ``request`` asks for): local
    (made at the first mount or open) or set up on a fresh shared store."""
    if (kind or getattr(request, "param", "local")) == "shared":
        return request.getfixturevalue("shared_store").init(path)
    return path
