"""``python -m contrib.scaleout DIR``: run SeaweedFS and PostgreSQL 15 on loopback for trying a
shared store, until Ctrl-C. Their data stays in DIR (run it again to restart them).

The S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (SeaweedFS creates that
user), the PostgreSQL password from PGPASSWORD (the cluster's owner gets it; without one the
cluster trusts loopback connections). Neither is printed. It prints the commands that set up
a store directory and mount it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .postgres import start_postgres
from .seaweed import start_seaweed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contrib.scaleout", description=__doc__.split("\n\n")[0])
    ap.add_argument("datadir", type=Path)
    ap.add_argument("--s3-port", type=int, default=8333)
    ap.add_argument("--pg-port", type=int, default=5433)
    ap.add_argument("--bucket", default="sessionfs")
    args = ap.parse_args(argv)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        print("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY first: SeaweedFS creates that user", file=sys.stderr)
        return 2
    args.datadir.mkdir(parents=True, exist_ok=True)
    args.datadir.chmod(0o755)                   # the PostgreSQL server runs as its own user
    pg = start_postgres(args.datadir / "postgres", args.pg_port, password=os.environ.get("PGPASSWORD"))
    try:
        weed = start_seaweed(args.datadir / "seaweed", args.s3_port, access_key=key, secret_key=secret,
                             bucket=args.bucket)
    except BaseException:
        pg.stop()
        raise
    print(f"export AWS_ENDPOINT_URL={weed.endpoint}\n"
          f"sessionfs init STORE --objects {weed.url('sessions')} --catalog {pg.url}\n"
          f"sessionfs mount STORE MOUNTPOINT\n"
          f"# the same init on another machine (its own STORE) joins the store. Ctrl-C stops both servers.",
          flush=True)
    try:
        weed.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        weed.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
