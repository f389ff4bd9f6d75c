"""The WebDAV front end over HTTP: authentication, path escapes, ETags, ranges, locks, the
read-only views, MOVE and DELETE keeping the catalog and search index in step, import/
drops, and a depth-1 PROPFIND of 1,000 sessions that reads no file. The server runs on
threads of the test process over a store opened here (``webdav_serving.served``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from store import Store
from webdav_serving import PASSWORD, USER, Client, served

LEGACY = Path(__file__).parent / "fixtures" / "legacy-store"


@pytest.fixture
def dav(tmp_path):
    store = Store.open(Store.init(tmp_path / "store"))
    try:
        with served(store) as url:
            yield store, Client(url)
    finally:
        store.close()


def metadata(sid: str, name: str, tags=("work",), start="2024-05-06T07:08:09Z") -> bytes:
    return json.dumps({"id": sid, "name": name, "status": "completed", "tags": list(tags),
                       "startTime": start}).encode()


def put_session(c: Client, sid: str, name: str, **kw) -> None:
    assert c.request("MKCOL", f"/sessions/{sid}/")[0] == 201
    assert c.request("PUT", f"/sessions/{sid}/metadata.json", metadata(sid, name, **kw))[0] == 201


def hrefs(body: bytes) -> list[str]:
    return [e.text for e in ET.fromstring(body).iter("{DAV:}href")]


def test_every_request_needs_the_user_and_password(dav):
    _, c = dav
    status, headers, _ = c.request("GET", "/", auth=False)
    assert status == 401 and "digest" in headers["www-authenticate"].lower()
    assert Client(c_url(c), USER, "wrong").request("PROPFIND", "/", headers={"Depth": "0"})[0] == 401
    assert Client(c_url(c), "mallory", PASSWORD).request("PROPFIND", "/", headers={"Depth": "0"})[0] == 401
    assert c.request("PROPFIND", "/", headers={"Depth": "0"})[0] == 207


def c_url(c: Client) -> str:
    return f"http://{c.host}:{c.port}/"


def test_paths_that_could_leave_the_tree_are_refused(dav):
    store, c = dav
    for path in ["/sessions/../etc/passwd", "/sessions/%2e%2e/%2e%2e/etc", "/sessions%2Fx", "/sessions/a%5c..%5cb",
                 "/sessions/a%00b", "/sessions/./x"]:
        status, _, body = c.request("GET", path)
        assert status == 400, (path, status, body)
    put_session(c, "s1", "one")
    status, _, _ = c.request("MOVE", "/sessions/s1/", headers={"Destination": f"{c_url(c)}sessions/%2e%2e/x/"})
    assert status == 400
    assert store.exists("sessions/s1/metadata.json")


def test_put_get_etag_and_ranges(dav):
    store, c = dav
    assert c.request("MKCOL", "/sessions/s1/")[0] == 201
    data = bytes(range(256)) * 4096                  # 1 MiB, several chunks
    status, headers, _ = c.request("PUT", "/sessions/s1/blob.bin", data)
    assert status == 201
    tag = headers["etag"]
    status, headers, body = c.request("GET", "/sessions/s1/blob.bin")
    assert status == 200 and body == data and headers["etag"] == tag
    assert store.read_path("sessions/s1/blob.bin") == data
    assert c.request("GET", "/sessions/s1/blob.bin", headers={"If-None-Match": tag})[0] == 304
    status, headers, body = c.request("GET", "/sessions/s1/blob.bin", headers={"Range": "bytes=70000-70099"})
    assert status == 206 and body == data[70000:70100]
    assert headers["content-range"] == f"bytes 70000-70099/{len(data)}"
    assert c.request("PUT", "/sessions/s1/blob.bin", data)[1]["etag"] == tag      # same content, same tag
    changed = data[:-1] + b"!"
    new_tag = c.request("PUT", "/sessions/s1/blob.bin", changed)[1]["etag"]
    assert new_tag != tag
    assert c.request("GET", "/sessions/s1/blob.bin", headers={"If-None-Match": tag})[2] == changed


def test_a_put_leaves_no_temporary_name_behind(dav):
    store, c = dav
    put_session(c, "s1", "one")
    for i in range(3):
        assert c.request("PUT", "/sessions/s1/notes.txt", f"version {i}\n".encode())[0] in (201, 204)
    store.settle()
    assert sorted(store.list_dir("sessions/s1")) == ["metadata.json", "notes.txt"]
    assert hrefs(c.request("PROPFIND", "/sessions/s1/", headers={"Depth": "1"})[2]) == [
        "/sessions/s1/", "/sessions/s1/metadata.json", "/sessions/s1/notes.txt"]


def test_the_views_list_sessions_and_refuse_every_change(dav):
    store, c = dav
    put_session(c, "s1", "quarterly planning", tags=("planning",))
    assert hrefs(c.request("PROPFIND", "/tags/", headers={"Depth": "1"})[2]) == ["/tags/", "/tags/planning/"]
    assert "/by-date/2024-05-06/s1/" in hrefs(c.request("PROPFIND", "/by-date/2024-05-06/", headers={"Depth": "1"})[2])
    assert "/search/quarterly/s1/" in hrefs(c.request("PROPFIND", "/search/quarterly/", headers={"Depth": "1"})[2])
    assert json.loads(c.request("GET", "/tags/planning/s1/metadata.json")[2])["name"] == "quarterly planning"
    assert json.loads(c.request("GET", "/.sessionfs/stats.json")[2])["pid"] == os.getpid()

    refused = [
        ("PUT", "/tags/planning/s1/metadata.json", b"{}", {}),
        ("PUT", "/tags/planning/s1/new.txt", b"x", {}),
        ("PUT", "/search/quarterly/x.txt", b"x", {}),
        ("PUT", "/.sessionfs/stats.json", b"{}", {}),
        ("PUT", "/stray.txt", b"x", {}),
        ("MKCOL", "/tags/new/", None, {}),
        ("MKCOL", "/elsewhere/", None, {}),
        ("DELETE", "/tags/planning/s1/", None, {}),
        ("DELETE", "/by-date/", None, {}),
        ("DELETE", "/sessions/", None, {}),
        ("MOVE", "/sessions/s1/", None, {"Destination": f"{c_url(c)}tags/planning/s2/"}),
        ("MOVE", "/tags/planning/s1/", None, {"Destination": f"{c_url(c)}sessions/s2/"}),
        ("COPY", "/sessions/s1/", None, {"Destination": f"{c_url(c)}by-date/s1/"}),
    ]
    for method, path, body, headers in refused:
        status = c.request(method, path, body, headers)[0]
        assert status in (403, 405, 409), (method, path, status)
    status, _, body = c.request("PROPPATCH", "/tags/planning/s1/metadata.json", (
        b'<?xml version="1.0"?><propertyupdate xmlns="DAV:"><set><prop><x xmlns="urn:t">1</x></prop></set>'
        b'</propertyupdate>'))
    assert status == 403 or b"403 Forbidden" in body
    lock = (b'<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
            b'<locktype><write/></locktype></lockinfo>')
    assert c.request("LOCK", "/tags/planning/s1/metadata.json", lock)[0] >= 400
    assert sorted(store.list_dir("sessions")) == ["s1"]
    assert sorted(store.list_dir("")) == ["import", "sessions"]


def test_move_and_delete_keep_the_catalog_and_search_index_in_step(dav):
    store, c = dav
    put_session(c, "s1", "zanzibar retrospective", tags=("travel",))
    assert c.request("PUT", "/sessions/s1/summary.json", b'{"text": "lots of zanzibar"}')[0] == 201
    assert hrefs(c.request("PROPFIND", "/search/zanzibar/", headers={"Depth": "1"})[2])[1:] == ["/search/zanzibar/s1/"]
    dest = f"{c_url(c)}sessions/s2/"
    assert c.request("MOVE", "/sessions/s1/", headers={"Destination": dest})[0] == 201
    assert hrefs(c.request("PROPFIND", "/search/zanzibar/", headers={"Depth": "1"})[2])[1:] == ["/search/zanzibar/s2/"]
    assert hrefs(c.request("PROPFIND", "/tags/travel/", headers={"Depth": "1"})[2])[1:] == ["/tags/travel/s2/"]
    assert c.request("GET", "/sessions/s1/metadata.json")[0] == 404
    assert c.request("DELETE", "/sessions/s2/")[0] == 204
    assert c.request("PROPFIND", "/tags/travel/", headers={"Depth": "1"})[0] == 404
    assert hrefs(c.request("PROPFIND", "/search/zanzibar/", headers={"Depth": "1"})[2]) == ["/search/zanzibar/"]
    assert store.list_dir("sessions") == []
    assert store.statistics().as_dict()["sessions"] == 0


def test_locks_are_class_2(dav):
    _, c = dav
    put_session(c, "s1", "one")
    assert "2" in c.request("OPTIONS", "/sessions/s1/metadata.json")[1]["dav"]
    lock = (b'<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
            b'<locktype><write/></locktype><owner>test</owner></lockinfo>')
    status, headers, _ = c.request("LOCK", "/sessions/s1/metadata.json", lock, {"Timeout": "Second-60"})
    assert status == 200
    token = headers["lock-token"]
    assert c.request("PUT", "/sessions/s1/metadata.json", metadata("s1", "two"))[0] == 423
    assert c.request("PUT", "/sessions/s1/metadata.json", metadata("s1", "two"), {"If": f"({token})"})[0] == 204
    assert c.request("UNLOCK", "/sessions/s1/metadata.json", headers={"Lock-Token": token})[0] == 204
    assert c.request("PUT", "/sessions/s1/metadata.json", metadata("s1", "three"))[0] == 204
    assert json.loads(c.request("GET", "/sessions/s1/metadata.json")[2])["name"] == "three"


def test_dead_properties_live_with_the_file(dav):
    _, c = dav
    put_session(c, "s1", "one")
    body = (b'<?xml version="1.0"?><propertyupdate xmlns="DAV:"><set><prop><c xmlns="urn:x">blue</c></prop></set>'
            b'</propertyupdate>')
    assert c.request("PROPPATCH", "/sessions/s1/metadata.json", body)[0] == 207
    assert c.request("MOVE", "/sessions/s1/metadata.json",
                     headers={"Destination": f"{c_url(c)}sessions/s1/m.json"})[0] == 201
    propfind = b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><c xmlns="urn:x"/></prop></propfind>'
    found = c.request("PROPFIND", "/sessions/s1/m.json", propfind, {"Depth": "0"})[2]
    assert [e.text for e in ET.fromstring(found).iter("{urn:x}c")] == ["blue"]


def test_a_legacy_file_put_into_import_is_migrated(dav):
    store, c = dav
    for f in sorted((LEGACY / "attachments").iterdir()):
        assert c.request("PUT", f"/import/attachments/{f.name}", f.read_bytes())[0] == 201
    legacy = next((LEGACY / "sessions").glob("*.json"))
    assert c.request("PUT", f"/import/{legacy.name}", legacy.read_bytes())[0] == 201
    sid = legacy.stem
    deadline = time.monotonic() + 120
    while c.request("GET", f"/sessions/{sid}/metadata.json")[0] != 200:
        assert time.monotonic() < deadline, store.list_dir("import")
        time.sleep(0.2)
    assert json.loads(c.request("GET", f"/sessions/{sid}/metadata.json")[2])["id"] == sid


def test_a_depth_1_propfind_of_1000_sessions_reads_no_file(dav):
    store, c = dav
    store.write_files({f"sessions/s{i:04}/metadata.json": metadata(f"s{i:04}", f"session {i}") for i in range(1000)})
    store.settle()
    before = store.statistics().as_dict()["cache"]
    status, _, body = c.request("PROPFIND", "/sessions/", headers={"Depth": "1"})
    after = store.statistics().as_dict()["cache"]
    assert status == 207
    listed = hrefs(body)
    assert len(listed) == 1001 and listed[1] == "/sessions/s0000/" and listed[-1] == "/sessions/s0999/"
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
    status, _, body = c.request("PROPFIND", "/sessions/s0005/", headers={"Depth": "1"})
    assert re.search(rb"<ns0:getetag>\"?c[0-9a-f]{40}", body), body[:2000]
    assert (store.statistics().as_dict()["cache"]["misses"]) == before["misses"]


def test_serve_takes_the_password_only_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SESSIONFS_PASSWORD"}
    proc = subprocess.run([sys.executable, "-m", "store.cli", "serve", str(tmp_path / "s"), "--user", USER],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "SESSIONFS_PASSWORD" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "store.cli", "serve", str(tmp_path / "s"), "--user", USER,
                           "--password", "x"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--password" in proc.stderr


def test_options_default_to_loopback_and_need_both_tls_files(monkeypatch, tmp_path):
    from store.core.errors import BadInputError
    from webdav.server import DEFAULT_LISTEN, WebDAVOptions

    monkeypatch.setenv("SESSIONFS_PASSWORD", PASSWORD)
    assert WebDAVOptions.parse(DEFAULT_LISTEN, USER).loopback
    assert not WebDAVOptions.parse("0.0.0.0:8080", USER).loopback
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    for listen, cert_file, key_file in [("127.0.0.1", None, None), ("127.0.0.1:99999", None, None),
                                        (DEFAULT_LISTEN, str(cert), None), (DEFAULT_LISTEN, str(cert), "/no/such")]:
        with pytest.raises(BadInputError):
            WebDAVOptions.parse(listen, USER, cert_file, key_file)


def test_https_with_a_certificate_and_key(tmp_path):
    import http.client
    import ssl

    from store.services.serving import Serving
    from webdav.server import WebDAVOptions, WebDAVServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=120)
    store = Store.open(Store.init(tmp_path / "store"))
    serving = Serving(store)
    server = WebDAVServer(store, serving, WebDAVOptions("127.0.0.1", 0, USER, PASSWORD, str(cert), str(key)))
    server.start()
    try:
        assert server.url.startswith("https://")
        host, port = server.url[len("https://"):].rstrip("/").split(":")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=120)
        conn.request("PROPFIND", "/", headers={"Depth": "0", "Authorization": Client(server.url.replace(
            "https", "http")).auth})
        assert conn.getresponse().status == 207
        conn.close()
        plain = http.client.HTTPConnection(host, int(port), timeout=120)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/")
            plain.getresponse()
    finally:
        server.stop()
        store.close()
