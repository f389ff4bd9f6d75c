"""Short crash loop for CI: 50 SIGKILLs of the daemon under a writer workload.

The harness is ``contrib/crashloop.py`` (its docstring states the contract checked);
long mode: ``python -m contrib.crashloop --loops 1000``.
"""

from __future__ import annotations

import pytest

from mounting import FUSE_AVAILABLE
from contrib.crashloop import EMPTY, CrashLoop, check_log, fsynced_in_place, writer_failure

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


def test_check_log_holds_an_fsynced_file_to_its_content_before_close():
    # Killed between fsync and close: the fsynced content only, never empty, old or absent.
    for lines in (["B a A2 inplace", "F a A2"], ["B a A2 append", "F a A2"]):
        assert check_log(lines, {"a": "A1"}, {"a": "A2"}) == []
        for seen in ({"a": EMPTY}, {"a": "A1"}, {}):
            assert check_log(lines, {"a": "A1"}, seen), (lines, seen)


def test_fsynced_in_place_counts_fsyncs_and_those_open_at_the_kill():
    lines = ["B a A2 inplace", "F a A2", "C a A2", "B b B2 append", "F b B2", "C b B2",
             "B c C2 inplace", "F c C2", "E 107"]
    assert fsynced_in_place(lines) == (2, 1)


def test_writer_failure_accepts_only_the_dead_mount():
    assert writer_failure(0, "", ["S 1", "C a x", "E 107"]) is None
    crashed = writer_failure(1, "Traceback (most recent call last):\nValueError: boom\n", ["S 1", "C a x"])
    assert crashed and "ValueError: boom" in crashed
    assert writer_failure(0, "", ["S 1", "E 5"])                 # EIO before the kill
    assert writer_failure(-9, "", ["S 1"])                      # killed after hanging


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_crash_loop(tmp_path):
    out = []
    loop = CrashLoop(tmp_path / "work", seed=3, verify_every=10, legacy_sessions=8, out=out.append)
    counts = loop.run(LOOPS)
    print(f"\ncrash loop: {counts}")
    assert counts["loops"] == LOOPS and counts["kills"] == LOOPS
    assert counts["writer_steps"] > LOOPS, "the writer did almost nothing before the kills"
    assert counts["f_after_inplace"] > 0 and counts["killed_fsynced_open"] > 0, counts
    assert counts["imports"] >= 5
    assert counts["violations"] == 0, "\n".join(loop.violations)


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_crash_loop_during_background_maintenance(tmp_path):
    """Kills land while the daemon recompresses cold blocks and collects garbage (no age limits).

    The compressor works only after ``quiet`` seconds without foreground I/O, which a running
    writer never leaves it; so every 3rd loop holds the writer back until it has worked."""
    from contrib.crashloop import MAINTENANCE_ARGS
    loops = 12
    loop = CrashLoop(tmp_path / "work", seed=4, verify_every=4, legacy_sessions=8, out=print,
                     mount_args=MAINTENANCE_ARGS, compress_every=3)
    counts = loop.run(loops)
    print(f"\ncrash loop with maintenance: {counts}")
    assert counts["violations"] == 0, "\n".join(loop.violations)
    assert counts["compressed_before_kill"] >= 1, "background compression never ran before a kill"


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_crash_loop_on_a_shared_store_with_a_second_mount(tmp_path, shared_store):
    """A shared store mounted twice: A is killed under the writer, B stays up and must show what
    A shows after each remount; ``python -m contrib.crashloop --shared`` is the long run."""
    loops = 5
    loop = CrashLoop(tmp_path / "work", seed=5, verify_every=4, legacy_sessions=8, out=print,
                     shared=(shared_store.objects, shared_store.catalog))
    counts = loop.run(loops)
    print(f"\nshared crash loop: {counts}")
    assert counts["loops"] == loops and counts["kills"] == loops
    assert counts["writer_steps"] > loops, "the writer did almost nothing before the kills"
    assert counts["violations"] == 0, "\n".join(loop.violations)
