"""litmus, the third-party WebDAV conformance suite (Debian ``litmus``), against the server:
every group (basic, copymove, props, locks, http) passes every test. The summary of each
group is printed (``pytest -s``) for the record."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from store import Store
from webdav_serving import PASSWORD, USER, Client, served

GROUPS = ("basic", "copymove", "props", "locks", "http")
SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


@pytest.mark.skipif(shutil.which("litmus") is None, reason="litmus is not installed (Debian package litmus)")
def test_litmus_passes_every_group(tmp_path):
    store = Store.open(Store.init(tmp_path / "store"))
    try:
        with served(store) as url:
            assert Client(url).request("MKCOL", "/sessions/litmus/")[0] == 201
            proc = subprocess.run(["litmus", "-k", f"{url}sessions/litmus/", USER, PASSWORD], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=600)
    finally:
        store.close()
    groups = {m.group(1): tuple(map(int, m.group(2, 3, 4))) for m in SUMMARY.finditer(proc.stdout)}
    for name, (run, passed, failed) in groups.items():
        print(f"litmus {name}: {passed} of {run} passed, {failed} failed")
    failures = [line for line in proc.stdout.splitlines() if "FAIL" in line or "WARNING" in line]
    assert sorted(groups) == sorted(GROUPS), proc.stdout[-4000:]
    assert not failures and all(failed == 0 for _, _, failed in groups.values()), "\n".join(failures)
