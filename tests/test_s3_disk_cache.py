"""The local disk cache of object ranges over a real S3 store (SeaweedFS).

- The eviction plan alone: least recently used first, just enough to fit.
- The bound in bytes holds (index and directory), recently used ranges stay.
- A reopened cache serves its ranges from disk (the objects gone from S3 meanwhile), and a
  smaller bound at reopen evicts down to it; a crashed write's temporary file goes.
- A damaged or truncated entry is detected, dropped, fetched again, never served.
- ``delete`` drops the object's entries; concurrent readers get the right bytes.
"""

from __future__ import annotations

import random
import threading

import pytest

from s3_server import s3_store, s3_url, seaweed  # noqa: F401  (fixtures)
from store.backends.objects.disk_cache import DiskCachedObjects, plan_eviction
from store.backends.objects.store import ObjectMissingError

BLOCK = 4096
ENTRY = 32 + BLOCK                 # a block and its hash on disk


def test_the_eviction_plan_takes_the_oldest_until_it_fits():
    lru = [("a", 10), ("b", 20), ("c", 30)]
    assert plan_eviction(lru, 60, 100, 40) == []
    assert plan_eviction(lru, 60, 100, 41) == ["a"]
    assert plan_eviction(lru, 60, 100, 65) == ["a", "b"]
    assert plan_eviction(lru, 60, 50, 0) == ["a"]
    assert plan_eviction(lru, 60, 10, 200) == ["a", "b", "c"]
    assert plan_eviction([], 0, 10, 5) == []


@pytest.fixture
def pack(seaweed, s3_url):
    """(the S3 store, one 64-block object in it, its bytes)."""
    store = s3_store(seaweed, s3_url)
    data = random.Random(3).randbytes(64 * BLOCK)
    store.put("packs/00000001", data)
    return store, "packs/00000001", data


def _block(data: bytes, i: int) -> bytes:
    return data[i * BLOCK:(i + 1) * BLOCK]


def _on_disk(directory) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def test_the_bound_is_kept_and_recent_ranges_stay(pack, tmp_path):
    s3, name, data = pack
    cache = DiskCachedObjects(s3, tmp_path / "cache", 10 * ENTRY)
    for i in range(40):
        assert cache.get(name, i * BLOCK, BLOCK) == _block(data, i)
        cache.get(name, 0, BLOCK)                             # block 0 stays the most recent
        assert cache.used_bytes <= 10 * ENTRY and _on_disk(tmp_path / "cache") <= 10 * ENTRY
    stats = cache.statistics()
    assert stats["entries"] == 10 and stats["evicted"] == 30
    hits = stats["hits"]
    for i in [0, *range(31, 40)]:
        assert cache.get(name, i * BLOCK, BLOCK) == _block(data, i)
    assert cache.statistics()["hits"] == hits + 10            # all ten were on disk
    assert cache.get(name, 5 * BLOCK, BLOCK) == _block(data, 5)
    assert cache.statistics()["hits"] == hits + 10            # an evicted one is fetched again


def test_a_reopened_cache_serves_from_disk(pack, tmp_path):
    s3, name, data = pack
    cache = DiskCachedObjects(s3, tmp_path / "cache", 100 * ENTRY)
    for i in range(8):
        cache.get(name, i * BLOCK, BLOCK)
    (tmp_path / "cache" / ".tmp-0123456789abcdef").write_bytes(b"a write cut by a crash")
    s3.delete(name)                                           # behind the cache's back
    again = DiskCachedObjects(s3, tmp_path / "cache", 100 * ENTRY)
    assert again.statistics()["entries"] == 8
    assert not (tmp_path / "cache" / ".tmp-0123456789abcdef").exists()
    assert all(again.get(name, i * BLOCK, BLOCK) == _block(data, i) for i in range(8))
    assert again.statistics()["hits"] == 8
    with pytest.raises(ObjectMissingError):
        again.get(name, 8 * BLOCK, BLOCK)
    smaller = DiskCachedObjects(s3, tmp_path / "cache", 3 * ENTRY)
    assert smaller.statistics()["entries"] == 3 and _on_disk(tmp_path / "cache") == 3 * ENTRY
    assert all(smaller.get(name, i * BLOCK, BLOCK) == _block(data, i) for i in (5, 6, 7))   # the last used


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "emptied"])
def test_a_damaged_entry_is_dropped_and_fetched_again(pack, tmp_path, damage):
    s3, name, data = pack
    cache = DiskCachedObjects(s3, tmp_path / "cache", 100 * ENTRY)
    assert cache.get(name, 3 * BLOCK, BLOCK) == _block(data, 3)
    [entry] = (tmp_path / "cache").iterdir()
    raw = bytearray(entry.read_bytes())
    if damage == "flipped byte":
        raw[100] ^= 0x40
    entry.write_bytes({"flipped byte": bytes(raw), "truncated": bytes(raw[:-7]), "emptied": b""}[damage])
    reopened = DiskCachedObjects(s3, tmp_path / "cache", 100 * ENTRY)
    assert reopened.get(name, 3 * BLOCK, BLOCK) == _block(data, 3)
    assert reopened.statistics()["damaged"] == 1
    assert len(entry.read_bytes()) == ENTRY
    assert reopened.get(name, 3 * BLOCK, BLOCK) == _block(data, 3)
    assert reopened.statistics()["hits"] == 1                # the refetched entry was rewritten whole


def test_delete_drops_the_objects_entries(pack, tmp_path):
    s3, name, data = pack
    s3.put("packs/00000002", b"other" * 1000)
    cache = DiskCachedObjects(s3, tmp_path / "cache", 100 * ENTRY)
    cache.get(name, 0, BLOCK)
    cache.get(name, BLOCK, BLOCK)
    cache.get("packs/00000002", 0, 100)
    cache.delete(name)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["packs~00000002@0+100"]
    assert cache.size(name) is None
    with pytest.raises(ObjectMissingError):
        cache.get(name, 0, BLOCK)


def test_concurrent_readers_get_the_right_bytes(pack, tmp_path):
    s3, name, data = pack
    cache = DiskCachedObjects(s3, tmp_path / "cache", 12 * ENTRY)
    wrong: list[int] = []

    def reader(seed: int):
        rnd = random.Random(seed)
        for _ in range(150):
            i = rnd.randrange(24)
            if cache.get(name, i * BLOCK, BLOCK) != _block(data, i):
                wrong.append(i)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not wrong and not any(t.is_alive() for t in threads)
    stats = cache.statistics()
    assert stats["hits"] > 0 and stats["evicted"] > 0 and stats["damaged"] == 0
    assert cache.used_bytes <= 12 * ENTRY
    assert _on_disk(tmp_path / "cache") == cache.used_bytes
