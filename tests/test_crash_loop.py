"""Short crash loop for CI: 50 SIGKILLs of the daemon under a writer workload.

The harness is ``contrib/crashloop.py`` (its docstring states the contract checked);
long mode: ``python -m contrib.crashloop --loops 1000``.
"""

from __future__ import annotations

import pytest

from mounting import FUSE_AVAILABLE
from contrib.crashloop import EMPTY, CrashLoop, check_log

LOOPS = 50


def test_check_log_catches_torn_and_half_renamed_files():
    before = {"a": "A1", "b": "B1"}
    lines = ["B a A2 inplace", "C a A2", "B b B2 append", "C c.tmp T1", "R c.tmp c", "U a"]
    # Allowed: a is A2 or gone; b old or new; rename all-or-nothing.
    assert check_log(lines, before, {"b": "B2", "c": "T1"}) == []
    assert check_log(lines, before, {"a": "A2", "b": "B1", "c.tmp": "T1"}) == []
    assert check_log(lines, before, {"a": "A1", "b": "B1", "c": "T1"})          # a went back
    assert check_log(lines, before, {"b": EMPTY, "c": "T1"})                    # append torn to empty
    assert check_log(lines, before, {"b": "B1", "c": "T1", "c.tmp": "T1"})       # rename half-visible
    assert check_log(lines, before, {"b": "Bx", "c": "T1"})                     # mixed content


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_crash_loop(tmp_path):
    out = []
    loop = CrashLoop(tmp_path / "work", seed=3, verify_every=10, legacy_sessions=8, out=out.append)
    counts = loop.run(LOOPS)
    print(f"\ncrash loop: {counts}")
    assert counts["loops"] == LOOPS and counts["kills"] == LOOPS
    assert counts["writer_steps"] > LOOPS, "the writer did almost nothing before the kills"
    assert counts["imports"] >= 5
    assert counts["violations"] == 0, "\n".join(loop.violations)


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_crash_loop_during_background_maintenance(tmp_path):
    """Kills land while the daemon recompresses cold blocks and collects garbage (no age limits)."""
    from contrib.crashloop import MAINTENANCE_ARGS
    from store import Store
    loop = CrashLoop(tmp_path / "work", seed=4, verify_every=4, legacy_sessions=8, out=print,
                     mount_args=MAINTENANCE_ARGS)
    counts = loop.run(12)
    with Store.open(tmp_path / "work" / "store", readonly=True) as st:
        m = st.statistics().maintenance
    print(f"\ncrash loop with maintenance: {counts}; recompressed blocks {m.recompressed_blocks}")
    assert counts["violations"] == 0, "\n".join(loop.violations)
    assert m.recompressed_blocks > 0, "background compression never ran under the kills"
