"""The S3 object store against real servers (the shared contract is in test_objects.py).

- The create-only probe: SeaweedFS passes and keeps no probe object; a server that ignores
  ``If-None-Match`` (silently overwrites) or answers 501 is refused with a message saying so.
  Those two are a tiny real HTTP server here (PUT/DELETE without conditions), as an
  rclone-based gateway or Swift behave: no S3 server that ignores the condition installs here.
- A store that is down: puts give EIO after the bounded retry, a put cut by the stop is whole
  or absent, and everything works again once the server is back.
- Credentials appear in no message or repr.
- An https endpoint works with its CA in ``AWS_CA_BUNDLE``, and without it the error says the
  certificate is not trusted.
- The packer over S3 with ``seal_every_commit``: each commit's pack is an object, reads and
  ``verify --data`` come back through ranged GETs.
- A store on S3 through the disk cache, the server stopped: flush gives EIO, cached files
  read, the held write commits once the server is back.
- The S3 benchmark script (contrib/bench/s3_bench.py) measures and reports.
"""

from __future__ import annotations

import errno
import random
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contrib.scaleout.seaweed import start_seaweed
from s3_server import s3_store, s3_url, seaweed  # noqa: F401  (fixtures)
from store.backends.objects.disk_cache import DiskCachedObjects
from store.backends.objects.packs import Packer, pack_name
from store.backends.objects.s3 import PROBE_PREFIX, CreateOnlyUnsupportedError, S3ObjectStore
from store.backends.objects.store import ObjectExistsError
from store.core.errors import FsError, StoreError
from store.engine.store import Store
from store.services.verify import verify


class _CarelessS3(BaseHTTPRequestHandler):
    """PUT stores (ignoring If-None-Match, or 501 on it); deletes remove: no conditions."""

    objects: dict[str, bytes] = {}
    answer_501 = False

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.answer_501 and self.headers.get("If-None-Match"):
            self._reply(501, b"<Error><Code>NotImplemented</Code></Error>")
            return
        self.objects[self.path] = body
        self._reply(200, b"", {"ETag": f'"{secrets.token_hex(16)}"'})

    def do_DELETE(self):
        self.objects.pop(self.path, None)
        self._reply(204, b"")

    def do_POST(self):
        """DeleteObjects (``POST /bucket?delete``), which the client uses for deletes."""
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        bucket = self.path.split("?", 1)[0]
        keys = re.findall(r"<Key>(.*?)</Key>", body)
        for key in keys:
            self.objects.pop(f"{bucket}/{key}", None)
        deleted = "".join(f"<Deleted><Key>{key}</Key></Deleted>" for key in keys)
        self._reply(200, f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{deleted}</DeleteResult>'.encode())

    def _reply(self, status, body, headers=None):
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=["overwrites", "501"])
def careless_server(request):
    handler = type("Handler", (_CarelessS3,), {"objects": {}, "answer_501": request.param == "501"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{server.server_address[1]}", handler.objects
    finally:
        server.shutdown()
        server.server_close()


_ENV = {"AWS_ACCESS_KEY_ID": "probe-key", "AWS_SECRET_ACCESS_KEY": "probe-secret-123"}


def test_a_server_without_create_only_puts_is_refused(careless_server):
    kind, endpoint, objects = careless_server
    with pytest.raises(CreateOnlyUnsupportedError) as exc:
        S3ObjectStore.from_url("s3://bucket/prefix", endpoint=endpoint, env=_ENV, timeout=5, retries=0)
    message = str(exc.value)
    assert "does not honour create-only PUTs" in message and endpoint in message
    assert ("replaced the first" if kind == "overwrites" else "not implemented") in message
    assert "probe-secret-123" not in message and "probe-key" not in message
    assert objects == {}                                  # the probe object was removed


def test_seaweedfs_passes_the_probe_and_keeps_no_probe_object(seaweed, s3_url):
    store = s3_store(seaweed, s3_url)
    store.probe_create_only()
    bucket_root = S3ObjectStore(seaweed.bucket, env=seaweed.env, probe=False)
    prefix = s3_url.split("/", 3)[3]
    assert bucket_root.list(f"{prefix}/") == {}
    assert not any(name.startswith(PROBE_PREFIX) or "/" + PROBE_PREFIX in name for name in bucket_root.list())


def test_credentials_are_in_no_message_or_repr(seaweed, s3_url):
    store = s3_store(seaweed, s3_url)
    assert seaweed.secret_key not in repr(store) and seaweed.access_key not in repr(store)
    wrong = {**seaweed.env, "AWS_SECRET_ACCESS_KEY": "wrong-" + seaweed.secret_key}
    with pytest.raises(OSError) as exc:
        S3ObjectStore.from_url(s3_url, env=wrong, timeout=5, retries=1)
    assert exc.value.errno == errno.EACCES and "credentials" in str(exc.value)
    assert seaweed.secret_key not in str(exc.value)
    with pytest.raises(StoreError) as missing:
        S3ObjectStore.from_url(s3_url, env={"AWS_ENDPOINT_URL": seaweed.endpoint})
    assert "AWS_ACCESS_KEY_ID" in str(missing.value)


def test_an_https_endpoint_with_a_private_ca(seaweed, s3_url):
    store = S3ObjectStore.from_url(s3_url, endpoint=seaweed.https_endpoint, env=seaweed.env)
    assert str(store).endswith(f"at {seaweed.https_endpoint}")
    store.put("packs/00000001", b"over TLS")
    assert s3_store(seaweed, s3_url).get("packs/00000001") == b"over TLS"      # the same bucket on HTTP
    untrusting = {k: v for k, v in seaweed.env.items() if k != "AWS_CA_BUNDLE"}
    with pytest.raises(OSError) as exc:
        S3ObjectStore.from_url(s3_url, endpoint=seaweed.https_endpoint, env=untrusting, timeout=5, retries=0)
    assert exc.value.errno == errno.EIO and "certificate is not trusted" in str(exc.value)
    with pytest.raises(StoreError) as missing:
        S3ObjectStore.from_url(s3_url, endpoint=seaweed.https_endpoint, env={**untrusting, "AWS_CA_BUNDLE": "/nowhere.pem"})
    assert "AWS_CA_BUNDLE=/nowhere.pem" in str(missing.value)


def test_a_stopped_store_gives_eio_and_works_again_after_restart(tmp_path):
    weed = start_seaweed(tmp_path / "weed", access_key="outage", secret_key=secrets.token_hex(16), bucket="outage")
    try:
        store = S3ObjectStore.from_url(weed.url("p"), env=weed.env, timeout=3, retries=3)
        rnd = random.Random(5)
        before = rnd.randbytes(200_000)
        store.put("packs/00000001", before)
        results: dict[str, BaseException | None] = {}
        stopped = threading.Event()

        def data_of(name: str) -> bytes:
            return random.Random(name).randbytes(1 << 20)

        def writer():
            for i in range(2, 100_000):
                name = pack_name(i)
                try:
                    store.put(name, data_of(name))
                    results[name] = None
                except OSError as exc:
                    results[name] = exc
                    if stopped.is_set():
                        return

        thread = threading.Thread(target=writer)
        thread.start()
        while len(results) < 3 and thread.is_alive():
            thread.join(0.05)
        weed.stop()
        stopped.set()
        thread.join(120)
        assert not thread.is_alive()
        failed = [name for name, exc in results.items() if exc is not None]
        assert failed and all(results[n].errno == errno.EIO for n in failed)
        assert str(weed.endpoint) in str(results[failed[-1]])
        with pytest.raises(OSError) as exc:
            store.get("packs/00000001", 0, 10)
        assert exc.value.errno == errno.EIO
        weed.start()
        assert store.get("packs/00000001") == before
        for name, exc in results.items():
            size = store.size(name)
            if exc is None:
                assert store.get(name) == data_of(name)
            else:
                assert size is None or store.get(name) == data_of(name)    # whole or absent
        store.put("packs/99999999", b"after the restart")
        assert store.get("packs/99999999") == b"after the restart"
        with pytest.raises(ObjectExistsError):
            store.put("packs/00000001", b"not the same")
    finally:
        weed.stop()


def test_the_packer_puts_every_commit_to_s3_and_reads_it_back(seaweed, s3_url, tmp_path):
    root = tmp_path / "store"
    objects = s3_store(seaweed, s3_url)
    rnd = random.Random(7)
    files = {f"sessions/s/f{i}.bin": rnd.randbytes(rnd.randint(5_000, 60_000)) for i in range(8)}

    def packer():
        return Packer(s3_store(seaweed, s3_url), root / "packing", 64 * 1024, seal_every_commit=True)

    with Store.open(root, create=True, packs=packer()) as st:
        for path, data in files.items():
            st.write_files({path: data})
            st.flush()
            assert st.packs.write_position == (None, 0)
            assert not list((root / "packing").iterdir())      # every committed block is in S3
        stored = objects.list("packs/")
        assert len(stored) >= len(files)
        assert set(stored) == {pack_name(pid) for pid in st.packs.sizes()}
        assert all(st.read_path(p) == d for p, d in files.items())
    with Store.open(root, packs=packer()) as st:
        assert all(st.read_path(p) == d for p, d in files.items())
        assert verify(st, data=True).ok


def test_the_s3_benchmark_measures_and_reports(seaweed, s3_url, tmp_path):
    from contrib.bench.s3_bench import measure, report
    store = s3_store(seaweed, s3_url)
    rows = measure(store, [4096, 65536], 3, tmp_path)
    assert [r["size"] for r in rows] == [4096, 65536]
    assert all(r[k] > 0 for r in rows for k in ("put", "fsync", "get", "range4k"))
    assert "range64k" in rows[1] and "range64k" not in rows[0]
    table = report(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| 4.0 KiB |") and table[3].startswith("| 64.0 KiB |")
    assert store.list() == {}                                # its objects are removed


def test_a_store_on_s3_rides_out_an_outage(tmp_path):
    """SeaweedFS stopped under a store (packs sealed every commit, read through the disk
    cache): the commit's flush fails with EIO, cached files still read, and once the
    server is back the held write commits and everything reads and verifies."""
    weed = start_seaweed(tmp_path / "weed", access_key="outage", secret_key=secrets.token_hex(16), bucket="outage")
    root = tmp_path / "store"
    try:
        def packer():
            s3 = S3ObjectStore.from_url(weed.url("p"), env=weed.env, timeout=3, retries=2)
            return Packer(DiskCachedObjects(s3, tmp_path / "disk-cache", 1 << 20), root / "packing", 64 * 1024,
                          seal_every_commit=True)

        before = random.Random(1).randbytes(50_000)
        during = random.Random(2).randbytes(50_000)
        # No block cache in memory: a read while the server is down is served by the disk cache.
        with Store.open(root, create=True, packs=packer(), cache_bytes=0) as st:
            st.write_files({"sessions/a/before.bin": before})
            st.flush()
            assert st.read_path("sessions/a/before.bin") == before      # now cached
            hits = st.packs.objects.hits
            weed.stop()
            st.write_files({"sessions/a/during.bin": during})
            with pytest.raises(FsError) as exc:
                st.flush()
            assert exc.value.errno == errno.EIO
            assert st.read_path("sessions/a/before.bin") == before
            assert st.packs.objects.hits > hits
            weed.start()
            st.flush()
            assert st.read_path("sessions/a/during.bin") == during
        with Store.open(root, packs=packer()) as st:
            assert st.read_path("sessions/a/before.bin") == before
            assert st.read_path("sessions/a/during.bin") == during
            assert verify(st, data=True).ok
    finally:
        weed.stop()
