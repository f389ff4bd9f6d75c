"""A private PostgreSQL 15 cluster on 127.0.0.1 (Debian's ``postgresql-15`` binaries).

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(the Debian package creates it) and every server command runs as that user. The cluster
listens on 127.0.0.1 only, on the port given, with password (scram) authentication when a
password is given and ``trust`` otherwise (tests on a private loopback port).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True, **kw)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class Postgres:
    """A running cluster: ``url`` for clients (no password in it), ``stop()`` to end it."""

    datadir: Path
    port: int
    user: str
    database: str
    password: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment for libpq clients (the password, if any, never goes into a URL)."""
        return {**os.environ, **({"PGPASSWORD": self.password} if self.password else {})}

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", str(int(timeout)), *args],
             timeout=timeout + 10)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.datadir / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: like a crash)."""
        if (self.datadir / "postmaster.pid").exists():
            self.pg_ctl("-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> str:
        """A new database on this cluster; its URL."""
        _run([str(PG_BIN / "createdb"), "-w", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
             env=self.env, timeout=60)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"


def start_postgres(datadir: str | os.PathLike, port: int | None = None, *, password: str | None = None,
                   database: str = "sessionfs", user: str = "sessionfs") -> Postgres:
    """Create (if new) and start a cluster in ``datadir``; its ``database`` owned by ``user``."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is not installed (Debian: apt-get install postgresql-15)")
    datadir = Path(datadir)
    port = port or free_port()
    fresh = not (datadir / "PG_VERSION").exists()
    if fresh:
        datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(datadir, 0o700)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            shutil.chown(datadir, owner.pw_uid, owner.pw_gid)
            os.chmod(datadir.parent, os.stat(datadir.parent).st_mode | 0o011)   # postgres must reach it
        cmd = [str(PG_BIN / "initdb"), "-D", str(datadir), "-U", user, "--encoding=UTF8", "--locale=C.UTF-8",
               "--auth=" + ("scram-sha-256" if password else "trust")]
        pwfile = None
        if password:
            pwfile = datadir / "pwfile"
            pwfile.write_text(password)
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            cmd.append(f"--pwfile={pwfile}")
        # initdb wants an empty directory: write the password file beside it, not in it.
        if pwfile is not None:
            outside = datadir.parent / f".{datadir.name}.pw"
            pwfile.rename(outside)
            cmd[-1] = f"--pwfile={outside}"
        try:
            _run(cmd, timeout=120)
        finally:
            if password:
                (datadir.parent / f".{datadir.name}.pw").unlink(missing_ok=True)
    conf = datadir / "postgresql.auto.conf"
    settings = {"listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": "''",
                "max_connections": "200", "fsync": "on"}
    conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    if os.geteuid() == 0:
        shutil.chown(conf, "postgres", "postgres")
    pg = Postgres(datadir, port, user, database, password)
    pg.start()
    if fresh:
        deadline = time.monotonic() + 30
        while True:
            proc = subprocess.run([str(PG_BIN / "createdb"), "-w", "-h", "127.0.0.1", "-p", str(port), "-U", user,
                                   database], capture_output=True, text=True, env=pg.env, timeout=60)
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                pg.stop()
                raise RuntimeError(f"createdb {database} failed: {proc.stderr.strip()}")
            time.sleep(0.2)
    return pg
