"""The object-store interface and the packer over it, through a real store.

- ``LocalObjectStore`` and ``S3ObjectStore`` (on a real SeaweedFS) keep one contract:
  create-only put (refused, the first object intact), ranged get, list by prefix with
  sizes, delete, a missing object's error naming it. The local store never follows symlinks.
- The packer's two policies: by default the open pack stays local and a sealed pack
  is put after the commit that records it; with ``seal_every_commit`` every commit's
  blocks are in the object store before the catalog commit.
- Recovery through the interface: a sealed pack whose put was lost is put again
  from its local copy, an orphan object is deleted, the open pack's torn tail is cut,
  and a store in the layout written before the interface (its open pack among the
  objects) opens and reads byte-identically.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3

import pytest

from store.engine.store import Store
from store.core.errors import FsError, IntegrityError
from store.backends.objects.faults import CatalogFaults, Schedule
from store.backends.objects.store import LocalObjectStore, ObjectExistsError, ObjectMissingError, ObjectStore
from store.backends.objects.packs import local_packer, pack_name
from store.services.verify import verify

from s3_server import s3_store, s3_url, seaweed  # noqa: F401  (fixtures)

PACK_SIZE = 64 * 1024


@pytest.fixture
def local_objects(tmp_path):
    store = LocalObjectStore(tmp_path / "objects")
    yield store
    store.close()


@pytest.fixture(params=["local", "s3"])
def objects(request, tmp_path):
    """Each implementation of the contract: a directory, and a prefix on a real SeaweedFS."""
    if request.param == "local":
        store = LocalObjectStore(tmp_path / "objects")
    else:
        store = s3_store(request.getfixturevalue("seaweed"), request.getfixturevalue("s3_url"))
    yield store
    store.close()


def test_it_is_an_object_store(objects):
    assert isinstance(objects, ObjectStore)


def test_put_is_create_only(objects, tmp_path):
    objects.put("packs/00000001", b"first")
    with pytest.raises(ObjectExistsError) as exc:
        objects.put("packs/00000001", b"second")
    assert "packs/00000001" in str(exc.value)
    src = tmp_path / "src"
    src.write_bytes(b"third")
    with pytest.raises(ObjectExistsError):
        objects.put_file("packs/00000001", src)
    assert objects.get("packs/00000001") == b"first"
    assert objects.list() == {"packs/00000001": 5}


def test_a_local_put_leaves_no_temporary_file(local_objects, tmp_path):
    local_objects.put("packs/00000001", b"first")
    with pytest.raises(ObjectExistsError):
        local_objects.put("packs/00000001", b"second")
    assert [p.name for p in (tmp_path / "objects" / "packs").iterdir()] == ["00000001"]


def test_put_file_and_ranged_get(objects, tmp_path):
    data = random.Random(1).randbytes(100_000)
    src = tmp_path / "pack"
    src.write_bytes(data)
    objects.put_file("packs/00000002", src)
    src.unlink()
    assert objects.get("packs/00000002", 1000, 5000) == data[1000:6000]
    assert objects.get("packs/00000002", 99_990, 10) == data[-10:]
    assert objects.get("packs/00000002") == data
    assert objects.get("packs/00000002", 99_000) == data[99_000:]
    assert objects.get("packs/00000002", len(data)) == b"" == objects.get("packs/00000002", 5, 0)
    assert objects.size("packs/00000002") == len(data)
    objects.put("packs/empty", b"")
    assert objects.get("packs/empty") == b"" and objects.size("packs/empty") == 0
    with pytest.raises(IntegrityError) as exc:
        objects.get("packs/00000002", 99_990, 20)
    assert "packs/00000002" in str(exc.value) and "truncated" in str(exc.value)


def _put_listing_fixture(objects) -> None:
    for name, data in [("packs/00000001", b"a"), ("packs/00000002", b"bb"), ("other/00000001", b"ccc"),
                       ("packs-old/x", b"dddd")]:
        objects.put(name, data)


def test_list_by_prefix_with_sizes(objects):
    _put_listing_fixture(objects)
    assert objects.list("packs/") == {"packs/00000001": 1, "packs/00000002": 2}
    assert objects.list("packs/00000002") == {"packs/00000002": 2}
    assert objects.list("packs") == {"packs/00000001": 1, "packs/00000002": 2, "packs-old/x": 4}
    assert set(objects.list()) == {"packs/00000001", "packs/00000002", "other/00000001", "packs-old/x"}
    assert objects.list("none/") == {}


def test_local_listing_skips_symlinks_and_temporary_files(local_objects, tmp_path):
    _put_listing_fixture(local_objects)
    (tmp_path / "objects" / "packs" / "00000009").symlink_to(tmp_path / "objects" / "other" / "00000001")
    (tmp_path / "objects" / "packs" / ".tmp-partial").write_bytes(b"half")
    assert local_objects.list("packs/") == {"packs/00000001": 1, "packs/00000002": 2}


def test_delete_and_missing_objects(objects):
    objects.put("packs/00000003", b"data")
    assert objects.get("packs/00000003", 0, 4) == b"data"       # a cached read descriptor
    objects.delete("packs/00000003")
    objects.delete("packs/00000003")                               # deleting twice is fine
    assert objects.size("packs/00000003") is None
    with pytest.raises(ObjectMissingError) as exc:
        objects.get("packs/00000003", 0, 4)
    assert "packs/00000003" in str(exc.value) and "missing" in str(exc.value)
    assert isinstance(exc.value, IntegrityError)
    objects.put("packs/00000003", b"again")                        # the name is free again
    assert objects.get("packs/00000003") == b"again"


def test_symlink_is_never_followed(local_objects, tmp_path):
    objects = local_objects
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"secret" * 100)
    (tmp_path / "objects" / "packs").mkdir(parents=True)
    (tmp_path / "objects" / "packs" / "00000004").symlink_to(decoy)
    assert objects.size("packs/00000004") is None
    with pytest.raises(IntegrityError) as exc:
        objects.get("packs/00000004", 0, 6)
    assert "symbolic link" in str(exc.value) and "secret" not in str(exc.value)
    with pytest.raises(ObjectExistsError):
        objects.put("packs/00000004", b"x")
    assert decoy.read_bytes() == b"secret" * 100


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "../x", ".hidden", "a/."])
def test_invalid_names_are_refused(objects, name):
    with pytest.raises(ValueError):
        objects.put(name, b"x")


def test_io_errors_keep_their_errno(tmp_path):
    objects = LocalObjectStore(tmp_path / "file-not-dir")
    (tmp_path / "file-not-dir").write_bytes(b"")
    with pytest.raises(OSError) as exc:
        objects.put("packs/00000001", b"x")
    assert exc.value.errno in (errno.ENOTDIR, errno.EEXIST)


# -- the packer through a real store --------------------------------------------------------
def _rows(root) -> dict[int, tuple[int, int]]:
    db = sqlite3.connect(root / "catalog.db")
    try:
        return {pid: (size, sealed) for pid, size, sealed in db.execute("SELECT id, size, sealed FROM packs")}
    finally:
        db.close()


def _files(n: int, seed: int) -> dict[str, bytes]:
    rnd = random.Random(seed)
    return {f"sessions/s{seed}/f{i}.bin": rnd.randbytes(rnd.randint(10_000, 40_000)) for i in range(n)}


def _local(root) -> list[str]:
    return sorted(os.listdir(root / "packing"))


def test_default_policy_keeps_the_open_pack_local_and_puts_sealed_packs(tmp_path):
    root = tmp_path / "store"
    files = _files(12, 1)
    with Store.open(root, create=True, packs=local_packer(root, PACK_SIZE)) as st:
        for path, data in files.items():
            st.write_files({path: data})
            st.flush()
        open_id, _ = st.packs.write_position
        objects = LocalObjectStore(root, ".pack").list("packs/")
    rows = _rows(root)
    assert len(rows) > 3
    assert _local(root) == [f"{open_id:08d}.pack"]            # only the open pack is local
    assert {pid for pid, (_, sealed) in rows.items() if not sealed} == {open_id}
    assert set(objects) == {pack_name(pid) for pid in rows if pid != open_id}
    assert all(objects[pack_name(pid)] == size for pid, (size, _) in rows.items() if pid != open_id)
    with Store.open(root, packs=local_packer(root, PACK_SIZE)) as st:
        assert st.packs.write_position[0] == open_id            # appended to again after reopening
        assert all(st.read_path(p) == d for p, d in files.items())
        assert verify(st, data=True).ok


def test_seal_every_commit_puts_every_commit_before_it_commits(tmp_path):
    root = tmp_path / "store"
    files = _files(6, 2)
    objects = LocalObjectStore(root, ".pack")
    with Store.open(root, create=True, packs=local_packer(root, PACK_SIZE, seal_every_commit=True)) as st:
        seen = set()
        for path, data in files.items():
            st.write_files({path: data})
            st.flush()
            rows = _rows(root)
            # Every pack a committed block is in is an object of its committed size, sealed.
            assert all(sealed for _, sealed in rows.values())
            assert {n: s for n, s in objects.list("packs/").items()} == \
                {pack_name(pid): size for pid, (size, _) in rows.items()}
            assert st.packs.write_position == (None, 0) and _local(root) == []
            assert set(rows) > seen                         # each commit made a new pack
            seen = set(rows)
        # A catalog commit that fails after the put: the object goes again, the retry commits.
        faults = CatalogFaults.install(st, Schedule(calls=[1], errno=errno.EIO))
        st.write_files({"sessions/late/f": b"late" * 5000})
        with pytest.raises(FsError):
            st.flush()
        faults.uninstall()
        st.flush()
        assert set(objects.list("packs/")) == {pack_name(pid) for pid in _rows(root)}
        assert st.read_path("sessions/late/f") == b"late" * 5000
    with Store.open(root, seal_every_commit=True) as st:
        assert all(st.read_path(p) == d for p, d in files.items())
        assert verify(st, data=True).ok


def test_seal_every_commit_after_a_store_with_an_open_pack(tmp_path):
    root = tmp_path / "store"
    with Store.open(root, create=True) as st:
        st.write_files({"sessions/a/f": b"a" * 10_000})
    assert _local(root) == ["00000001.pack"]
    with Store.open(root, seal_every_commit=True) as st:
        st.write_files({"sessions/b/f": b"b" * 10_000})
        st.flush()
        assert _local(root) == [] and all(sealed for _, sealed in _rows(root).values())
        assert set(LocalObjectStore(root, ".pack").list("packs/")) == {"packs/00000001"}
        assert st.read_path("sessions/a/f") == b"a" * 10_000 and st.read_path("sessions/b/f") == b"b" * 10_000


def _store_with_sealed_packs(tmp_path):
    root = tmp_path / "store"
    files = _files(10, 3)
    with Store.open(root, create=True, packs=local_packer(root, PACK_SIZE)) as st:
        st.write_files(files)
        st.flush()
        open_id = st.packs.write_position[0]
    return root, files, open_id


def test_a_lost_put_is_done_again_from_the_local_copy(tmp_path):
    root, files, open_id = _store_with_sealed_packs(tmp_path)
    sealed = min(_rows(root))
    assert sealed != open_id
    # The state of a crash after the commit that sealed it, before its put.
    os.rename(root / "packs" / f"{sealed:08d}.pack", root / "packing" / f"{sealed:08d}.pack")
    with Store.open(root, packs=local_packer(root, PACK_SIZE)) as st:
        assert LocalObjectStore(root, ".pack").size(pack_name(sealed)) == _rows(root)[sealed][0]
        assert _local(root) == [f"{open_id:08d}.pack"]
        assert all(st.read_path(p) == d for p, d in files.items())


def test_a_put_whose_local_copy_remained_drops_the_copy(tmp_path):
    root, files, open_id = _store_with_sealed_packs(tmp_path)
    sealed = min(_rows(root))
    os.link(root / "packs" / f"{sealed:08d}.pack", root / "packing" / f"{sealed:08d}.pack")
    with Store.open(root, packs=local_packer(root, PACK_SIZE)) as st:
        assert _local(root) == [f"{open_id:08d}.pack"]
        assert all(st.read_path(p) == d for p, d in files.items())


def test_orphans_go_and_the_open_packs_torn_tail_is_cut(tmp_path):
    root, files, open_id = _store_with_sealed_packs(tmp_path)
    committed = _rows(root)[open_id][0]
    LocalObjectStore(root, ".pack").put(pack_name(open_id + 7), b"uncommitted batch")
    (root / "packing" / f"{open_id + 3:08d}.pack").write_bytes(b"uncommitted local pack")
    with open(root / "packing" / f"{open_id:08d}.pack", "ab") as f:
        f.write(b"torn tail of an uncommitted append")
    with Store.open(root, packs=local_packer(root, PACK_SIZE)) as st:
        assert st.packs.write_position == (open_id, committed)
        assert os.path.getsize(root / "packing" / f"{open_id:08d}.pack") == committed
        assert st.packs.size(open_id + 7) is None and _local(root) == [f"{open_id:08d}.pack"]
        assert all(st.read_path(p) == d for p, d in files.items())
        st.write_files({"sessions/new/f": b"new" * 1000})
        st.flush()
        assert st.read_path("sessions/new/f") == b"new" * 1000
        assert verify(st, data=True).ok


def test_the_layout_before_the_interface_opens_and_reads_the_same(tmp_path):
    """Stores written before the object-store interface kept their open pack among the
    sealed ones (``packs/<id>.pack``, ``sealed = 0``): it is taken as a sealed object."""
    root, files, open_id = _store_with_sealed_packs(tmp_path)
    committed = _rows(root)[open_id][0]
    os.rename(root / "packing" / f"{open_id:08d}.pack", root / "packs" / f"{open_id:08d}.pack")
    os.rmdir(root / "packing")
    before = {p.name: p.read_bytes() for p in (root / "packs").iterdir()}
    with Store.open(root, readonly=True) as st:
        assert all(st.read_path(p) == d for p, d in files.items())
    with Store.open(root, packs=local_packer(root, PACK_SIZE)) as st:
        assert _rows(root)[open_id] == (committed, 1)
        assert all(st.read_path(p) == d for p, d in files.items())
        st.write_files({"sessions/after/f": b"after" * 1000})
        st.flush()
        assert st.packs.write_position[0] > open_id
        assert verify(st, data=True).ok
    assert {p.name: p.read_bytes() for p in (root / "packs").iterdir() if p.name in before} == before


def test_gc_compaction_writes_through_the_packer_and_deletes_objects(tmp_path):
    from store.services.gc import GcOptions, collect
    root = tmp_path / "store"
    files = _files(12, 4)
    objects = LocalObjectStore(root, ".pack")
    with Store.open(root, create=True, packs=local_packer(root, PACK_SIZE, seal_every_commit=True)) as st:
        names = sorted(files)
        for pair in zip(names[::2], names[1::2]):          # two files a commit: a pack each
            st.write_files({p: files[p] for p in pair})
            st.flush()
        doomed = names[::2]
        st.write_files({path: None for path in doomed})
        st.flush()
        before = set(objects.list("packs/"))
        result = collect(st, GcOptions(grace=0))
        assert result.packs_deleted > 0 and result.bytes_copied > 0
        after = set(objects.list("packs/"))
        assert after == {pack_name(pid) for pid in _rows(root)} and not before <= after
        assert _local(root) == [] and all(sealed for _, sealed in _rows(root).values())
        for path in set(files) - set(doomed):
            assert st.read_path(path) == files[path]
        assert verify(st, data=True).ok
