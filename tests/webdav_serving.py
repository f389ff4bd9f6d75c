"""Serving stores over WebDAV in tests: ``sessionfs serve`` as its own process (``Server``),
a server on threads of the test process (``served``), a davfs2 mount of either (``Davfs``,
its configuration in a temporary directory) and a small HTTP client (``Client``)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "alice", "correct horse battery staple"
DAVFS_AVAILABLE = shutil.which("mount.davfs") is not None and os.path.exists("/dev/fuse")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One HTTP/1.1 connection with Basic authentication (``auth=False``: none)."""

    def __init__(self, url: str, user: str = USER, password: str = PASSWORD):
        host, port = url.split("//", 1)[1].rstrip("/").split(":")
        self.host, self.port = host, int(port)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                auth: bool = True) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            h = dict(headers or {})
            if auth:
                h["Authorization"] = self.auth
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


def wait_until_serving(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    client = Client(url)
    while True:
        try:
            if client.request("OPTIONS", "/")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no WebDAV server answers at {url}")
        time.sleep(0.1)


class Server:
    """``sessionfs serve STORE`` in a process of its own."""

    def __init__(self, store: Path, port: int | None = None):
        self.store = Path(store)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "Server":
        env = dict(os.environ, SESSIONFS_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen([sys.executable, "-m", "store.cli", "serve", str(self.store), "--listen",
                                      f"127.0.0.1:{self.port}", "--user", USER, "--no-compress", "--no-gc"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(self.store.parent / "serve.log", "ab"))
        wait_until_serving(self.url)
        return self

    def stop(self) -> None:
        """SIGTERM: commit what is queued, exit."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(120) == 0, (self.store.parent / "serve.log").read_text()[-3000:]
            self.proc = None

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(60)
            self.proc = None

    def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(60)
            self.proc = None


@contextlib.contextmanager
def served(store):
    """Serve an open writable store over WebDAV from threads of this process; yields the URL."""
    from store.services.serving import Serving
    from webdav.server import WebDAVOptions, WebDAVServer

    serving = Serving(store)
    server = WebDAVServer(store, serving, WebDAVOptions("127.0.0.1", 0, USER, PASSWORD))
    server.start()
    serving.start()
    try:
        yield server.url
    finally:
        server.stop()
        serving.stop()


class Davfs:
    """A davfs2 mount of ``url`` at ``path``; configuration, secrets and cache in a directory of
    its own in /tmp (mount.davfs drops to its own user, which cannot enter pytest's 0700 tmp).

    ``buf_size 64``: with a smaller buffer, davfs2 1.6 fails every readdir with EINVAL on
    Linux 6.16 and later. Directory and file refresh are 1 s so a change made beside the
    mount shows soon."""

    def __init__(self, url: str, path: Path):
        self.url, self.path = url, Path(path)
        self.work = Path(tempfile.mkdtemp(prefix="sessionfs-davfs-"))
        os.chmod(self.work, 0o755)

    def mount(self) -> "Davfs":
        self.path.mkdir(parents=True, exist_ok=True)
        cache = self.work / "cache"
        cache.mkdir(exist_ok=True)
        os.chmod(cache, 0o777)
        secrets = self.work / "secrets"
        secrets.write_text(f"{self.url} {USER} \"{PASSWORD}\"\n")
        os.chmod(secrets, 0o600)
        conf = self.work / "davfs2.conf"
        conf.write_text(f"secrets {secrets}\ncache_dir {cache}\nask_auth 0\ndelay_upload 0\nbuf_size 64\n"
                        "dir_refresh 1\nfile_refresh 1\nuse_locks 1\n")
        r = subprocess.run(["mount.davfs", "-o", f"conf={conf}", self.url, str(self.path)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"mount.davfs {self.url} {self.path}: {r.stderr}"
        return self

    def umount(self) -> None:
        """Unmount, uploading what davfs2 still holds."""
        subprocess.run(["umount", str(self.path)], check=True, capture_output=True, timeout=300)

    def cleanup(self) -> None:
        if os.path.ismount(self.path):
            subprocess.run(["umount", str(self.path)], capture_output=True, timeout=300)
            if os.path.ismount(self.path):
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)
