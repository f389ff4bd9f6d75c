"""Both servers of a shared store in one directory, for the long runs and benchmarks in contrib."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .postgres import start_postgres
from .seaweed import start_seaweed


def start_servers(datadir: Path, started: list) -> tuple[str, str]:
    """SeaweedFS and PostgreSQL in ``datadir`` (appended to ``started``, for the caller to stop),
    their S3 credentials in this process's environment; the shared store's (objects, catalog)."""
    datadir.mkdir(parents=True, exist_ok=True)
    for d in (datadir.parent, datadir):        # the PostgreSQL server runs as its own user
        d.chmod(d.stat().st_mode | 0o011)
    pg = start_postgres(datadir / "postgres")
    started.append(pg)
    weed = start_seaweed(datadir / "seaweed", access_key=f"key{secrets.token_hex(6)}",
                         secret_key=secrets.token_hex(16), bucket="sessionfs")
    started.append(weed)
    os.environ.update({k: v for k, v in weed.env.items() if k.startswith("AWS_")})
    return weed.url("store"), pg.url
