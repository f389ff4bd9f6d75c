"""The Node reader (``contrib/tauri``) through davfs2 mounting the WebDAV server that the
mount's own daemon runs (``sessionfs mount --webdav``): it reads exactly what the Python
session API returns, as it does through the FUSE mount (``test_clients``, whose corpus,
ground truth and Node build this reuses).

Except ``search(query)``, which the Node tests skip here with the reason: davfs2 opens only
names a directory listing gave it, and ``search/`` lists no queries (any name is one), so
``search/<q>/`` cannot be opened through davfs2 (over HTTP it answers: ``test_webdav``).
``--test-force-exit``: the watch test leaves a timer that would keep Node up for a minute."""

from __future__ import annotations

import os
import shutil
import subprocess

import orjson
import pytest

from mounting import FUSE_AVAILABLE, Mount
from test_clients import N_SESSIONS, SEARCH_TEST, TAP_LINE, corpus, node_build, python_values, write_session  # noqa: F401
from webdav_serving import DAVFS_AVAILABLE, PASSWORD, USER, davfs as davfs_mount, free_port

DAVFS_SEARCH = ("davfs2 opens only the names a directory listing gave it, and search/ lists no queries: "
                "search/<query>/ is reachable over WebDAV, not through davfs2")

pytestmark = pytest.mark.skipif(not (FUSE_AVAILABLE and DAVFS_AVAILABLE), reason="FUSE or davfs2 is missing")


@pytest.fixture(scope="module")
def dav_corpus(tmp_path_factory):
    """A mount serving WebDAV too, the corpus written through the FUSE mount, davfs2 on the
    WebDAV side, and the ground truth."""
    base = tmp_path_factory.mktemp("dav-clients")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SESSIONFS_PASSWORD", PASSWORD)
        m = Mount(base / "store", base / "mnt", "--webdav", f"127.0.0.1:{port}", "--webdav-user", USER)
        davfs = davfs_mount(f"http://127.0.0.1:{port}/", base / "dav")
        try:
            m.start()
            assert m.stats()["webdav"] == f"http://127.0.0.1:{port}/"
            sessions = corpus()
            for session in sessions:
                write_session(m.sessions, session)
            davfs.mount()
            values = python_values(m.store, sessions, {"available": False, "reason": DAVFS_SEARCH})
            assert len(values["list"]) == N_SESSIONS
            expected = base / "expected.json"
            expected.write_bytes(orjson.dumps(values))
            yield davfs.path, expected
        finally:
            davfs.cleanup()
            m.cleanup()


def test_node_reader_through_davfs2_reads_what_the_python_api_returns(node_build, dav_corpus):
    path, expected = dav_corpus
    tests = sorted(str(p.relative_to(node_build)) for p in (node_build / "dist" / "test").glob("*.test.js"))
    env = dict(os.environ, SESSIONFS_MNT=str(path), SESSIONFS_EXPECTED=str(expected))
    proc = subprocess.run([shutil.which("node"), "--test", "--test-force-exit", "--test-reporter=tap", *tests],
                          cwd=node_build,
                          capture_output=True, text=True, timeout=600, env=env)
    results = {}
    for line in proc.stdout.splitlines():
        if (m := TAP_LINE.match(line)) is not None:
            results[m.group(2)] = (m.group(1), m.group(3) and (m.group(4) or m.group(3)))
    assert results, proc.stdout[-8000:] + proc.stderr[-2000:]
    failed = [name for name, (status, _) in results.items() if status != "ok"]
    assert not failed, (failed, proc.stdout[-8000:])
    assert results[SEARCH_TEST] == ("ok", DAVFS_SEARCH)
