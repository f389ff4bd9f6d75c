"""Shared fixtures. Mount tests skip only where /dev/fuse or fusermount3 is missing.

``mount`` is a fresh local store unless a test asks for both kinds with
``shared_store.on_both_stores``: then it runs once on a local store and once on a shared one
(S3 + PostgreSQL).
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from mounting import FUSE_AVAILABLE, Mount
from pg_server import postgres  # noqa: F401 - a fixture the shared store uses
from s3_server import seaweed  # noqa: F401 - a fixture the shared store uses
from shared_store import shared_store, store_dir  # noqa: F401 - a fixture and its use

# No hypothesis deadlines anywhere: a slow example on a loaded machine is not a bug (hangs are
# bounded by pytest-timeout; timings live in contrib/bench).
settings.register_profile("sessionfs", deadline=None)
settings.load_profile("sessionfs")


@pytest.fixture
def mount(request, tmp_path):
    """A fresh store mounted at tmp_path/mnt; always unmounted, even when the test fails."""
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    m = Mount(store_dir(request, tmp_path / "store"), tmp_path / "mnt")
    try:
        yield m.start()
    finally:
        m.cleanup()
