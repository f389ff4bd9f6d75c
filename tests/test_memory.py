"""The daemon's memory bound: how ``--memory-limit`` is divided, how the governor reacts, and a
real mount that stays under its limit through parallel writes, parallel reads, huge sparse
sizes and imports (one of them over the bound the limit sets)."""

from __future__ import annotations

import os
import subprocess
import time

import orjson
import pytest

from store.engine.cache import ByteLRU
from store.core.errors import BadInputError
from store.engine.memory import BASE_BYTES, HIGH, LOW, MiB, next_cache_capacity, plan

from checks import LEGACY_EXAMPLE
from mounting import FUSE_AVAILABLE, Mount, process_alive, sessionfs

EXAMPLE = LEGACY_EXAMPLE


# ---------------------------------------------------------------- the plan (pure)
def test_default_plan_divides_the_limit():
    p = plan(512 * MiB, 100 * MiB)
    headroom = 512 * MiB - BASE_BYTES - 100 * MiB
    assert p.cache_bytes == 100 * MiB
    assert 4 <= p.max_tasks <= 64
    assert p.pending_bytes <= headroom * 0.2 + 1
    assert p.import_file_bytes * 2 <= headroom * 0.4 + 1
    # what the plan hands out fits in the limit even if all of it is in use at once
    tasks = p.max_tasks * (p.reader_cache_kib * 1024 + 512 * 1024)
    assert BASE_BYTES + p.cache_bytes + tasks + p.pending_bytes + 2 * p.import_file_bytes <= p.limit


@pytest.mark.parametrize("limit, cache, words", [
    (100 * MiB, 100 * MiB, "at most half"),
    (96 * MiB, 40 * MiB, "too small"),
])
def test_a_plan_that_cannot_hold_is_refused_in_words(limit, cache, words):
    with pytest.raises(BadInputError, match=words):
        plan(limit, cache)


def test_a_smaller_limit_gives_fewer_tasks_and_smaller_imports():
    small, large = plan(160 * MiB, 48 * MiB), plan(2048 * MiB, 100 * MiB)
    assert small.max_tasks < large.max_tasks
    assert small.import_file_bytes < large.import_file_bytes
    assert small.reader_cache_kib <= large.reader_cache_kib


# ---------------------------------------------------------------- the governor's decision (pure)
def test_cache_shrinks_under_pressure_and_grows_back():
    limit, configured = 200 * MiB, 80 * MiB
    rss = int(limit * 0.95)
    shrunk = next_cache_capacity(rss, limit, configured, configured, configured)
    assert shrunk == configured - int(rss - limit * LOW)
    assert next_cache_capacity(limit * 2, limit, configured, configured, configured) == configured // 8
    # in the band between LOW and HIGH nothing changes; below LOW it grows by steps up to the configured size
    assert next_cache_capacity(int(limit * (LOW + HIGH) / 2), limit, shrunk, shrunk, configured) == shrunk
    grown, steps = shrunk, 0
    while grown < configured:
        grown = next_cache_capacity(int(limit * 0.3), limit, grown, 0, configured)
        steps += 1
    assert grown == configured and steps <= 8


def test_lru_capacity_change_evicts_the_oldest_first():
    lru = ByteLRU(40)
    for k in "abcd":
        lru.put(k, k.encode() * 10)
    lru.get("a")                      # a is now the most recent
    lru.set_capacity(20)
    assert lru.get("a") is not None and lru.get("d") is not None
    assert lru.get("b") is None and lru.get("c") is None
    assert lru.statistics().bytes_held == 20


# ---------------------------------------------------------------- a real mount
def _vm(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_daemon_stays_under_its_memory_limit(tmp_path):
    limit, cache = 160 * MiB, 48 * MiB
    m = Mount(tmp_path / "store", tmp_path / "mnt", "--memory-limit", "160M", "--cache-size", "48M")
    try:
        m.start()
        budget = plan(limit, cache)
        d = m.sessions / "s"
        d.mkdir()
        # parallel writers (the kernel sends 128 KiB writes; they go to staging files, not memory)
        script = f"for i in $(seq 1 8); do head -c 24M /dev/urandom > {d}/f$i & done; wait"
        subprocess.run(["bash", "-c", script], check=True, timeout=300)
        # 32 parallel readers, twice: more blocks than the cache holds pass through it
        script = f"for r in 1 2; do for i in $(seq 1 8); do for j in 1 2 3 4; do cat {d}/f$i >/dev/null & done; done; wait; done"
        subprocess.run(["bash", "-c", script], check=True, timeout=300)
        # huge sizes are sparse: nothing of them is allocated
        fd = os.open(d / "sparse", os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, b"x" * 4096, 1 << 40)
        os.ftruncate(fd, 1 << 43)
        os.close(fd)
        assert os.stat(d / "sparse").st_size == 1 << 43
        os.truncate(d / "sparse", 5)
        # an import within the bound succeeds; one over it is refused by name, before it is read
        example = next((EXAMPLE / "sessions").glob("*.json"))
        (m.path / "import" / "attachments").mkdir(exist_ok=True)
        for att in (EXAMPLE / "attachments").iterdir():
            (m.path / "import" / "attachments" / att.name).write_bytes(att.read_bytes())
        (m.path / "import" / example.name).write_bytes(example.read_bytes())
        big = orjson.loads(example.read_bytes())
        big["id"] = "00000000-0000-0000-0000-00000000b16f"
        big["description"] = "x" * (budget.import_file_bytes + 1024)
        (m.path / "import" / "big.json").write_bytes(orjson.dumps(big))
        _wait_for(lambda: (m.sessions / example.stem / "metadata.json").exists()
                  and (m.path / "import" / "big.json.error").exists())
        why = (m.path / "import" / "big.json.error").read_text()
        assert "over the bound" in why and "--memory-limit" in why
        assert not (m.sessions / big["id"]).exists()

        stats = m.stats()["memory"]
        peak = _vm(m.pid, "VmHWM")
        print(f"daemon peak RSS {peak / MiB:.0f} MiB under a limit of {limit / MiB:.0f} MiB "
              f"(cache {cache / MiB:.0f} MiB, {stats['max_tasks']} tasks)")
        assert peak <= limit, f"peak RSS {peak / MiB:.0f} MiB over the {limit / MiB:.0f} MiB limit"
        assert stats["limit"] == limit and stats["cache_configured"] == cache
        assert stats["peak_rss"] <= limit and stats["max_tasks"] == budget.max_tasks
        assert process_alive(m.pid)
        m.umount()
        out = sessionfs("verify", str(m.store), "--data")
        assert out.returncode == 0
    finally:
        m.cleanup()


def test_mount_refuses_a_limit_that_cannot_hold_its_cache(tmp_path):
    (tmp_path / "mnt").mkdir()
    r = sessionfs("mount", str(tmp_path / "store"), str(tmp_path / "mnt"), "--memory-limit", "100M", check=False)
    assert r.returncode != 0 and "at most half" in r.stderr
    assert not (tmp_path / "store").exists()          # refused before anything was created
