"""Shared fixtures. Mount tests skip only where /dev/fuse or fusermount3 is missing."""

from __future__ import annotations

import pytest
from hypothesis import settings

from mounting import FUSE_AVAILABLE, Mount

# No hypothesis deadlines anywhere: a slow example on a loaded machine is not a bug (hangs are
# bounded by pytest-timeout; timings live in contrib/bench).
settings.register_profile("sessionfs", deadline=None)
settings.load_profile("sessionfs")


@pytest.fixture
def mount(tmp_path):
    """A fresh store mounted at tmp_path/mnt; always unmounted, even when the test fails."""
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    m = Mount(tmp_path / "store", tmp_path / "mnt")
    try:
        yield m.start()
    finally:
        m.cleanup()
