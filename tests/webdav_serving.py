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
import time
from pathlib import Path

from contrib.davfs import Davfs

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


def davfs(url: str, path: Path) -> Davfs:
    """A davfs2 mount of ``url`` at ``path`` with the tests' user (not mounted yet)."""
    return Davfs(url, path, USER, PASSWORD)
