"""S3 request latency by object size on a private SeaweedFS, and the pack size it suggests.

    python -m contrib.bench.s3_bench [--rounds 20] [--sizes 4K,64K,1M,4M,16M,64M] [--boto3]

Starts ``weed mini`` (``contrib.scaleout.seaweed``) in a temporary directory and, through
``S3ObjectStore`` (obstore), times for each size: a create-only PUT, a whole GET, a 4 KiB and
a 64 KiB ranged GET (random offsets), and beside them a local write + fsync of the same size
(what a commit costs without S3). Medians in milliseconds. With ``--boto3`` the same PUT and
ranged GET through boto3, to compare the clients.

The pack size for S3 follows from PUT = a + b * size: with ``seal_every_commit`` each durable
commit puts its pack, so a commit of B new bytes costs ceil(B / pack size) requests; the
table gives the per-request share (the fastest PUT of at most 64 KiB taken as a) of a
PUT at each size.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from contrib.scaleout.seaweed import start_seaweed
from store.backends.objects.s3 import S3ObjectStore
from store.cli.migrate import parse_size
from store.core.units import human_bytes


def _median_ms(fn, rounds: int) -> float:
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _fsync_write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def measure(store: S3ObjectStore, sizes: list[int], rounds: int, work: Path, boto=None, bucket: str = "",
            prefix: str = "") -> list[dict]:
    rnd = random.Random(1)
    rows = []
    for size in sizes:
        data = rnd.randbytes(size)
        n = max(3, min(rounds, (512 << 20) // size))
        tag = secrets.token_hex(4)
        names = [f"bench/{size}-{tag}-{i}" for i in range(n)]
        row = {"size": size, "n": n,
               "put": _median_ms(lambda i: store.put(names[i], data), n),
               "get": _median_ms(lambda i: store.get(names[i]), n)}
        for span in (4096, 65536):
            if span <= size:
                row[f"range{span // 1024}k"] = _median_ms(
                    lambda i: store.get(names[i], rnd.randrange(size - span + 1), span), n)
        row["fsync"] = _median_ms(lambda i: _fsync_write(work / "fsync", data), n)
        if boto is not None:
            row["boto3 put"] = _median_ms(lambda i: boto.put_object(
                Bucket=bucket, Key=f"{prefix}/{names[i]}-b", Body=data, IfNoneMatch="*"), n)
            row["boto3 range64k"] = _median_ms(lambda i: boto.get_object(
                Bucket=bucket, Key=f"{prefix}/{names[i]}-b", Range=f"bytes=0-{min(size, 65536) - 1}")["Body"].read(), n)
        for name in names:
            store.delete(name)
        rows.append(row)
    return rows


def report(rows: list[dict]) -> str:
    order = ["put", "fsync", "get", "range4k", "range64k", "boto3 put", "boto3 range64k"]
    cols = [c for c in order if any(c in r for r in rows)]
    small = min(r["put"] for r in rows if r["size"] <= 65536) if rows[0]["size"] <= 65536 else 0
    lines = ["| size | n | " + " | ".join(f"{c} ms" for c in cols) + " | PUT MB/s | request share |",
             "|" + "---|" * (len(cols) + 4)]
    for r in rows:
        cells = [f"{r[c]:.2f}" if c in r else "" for c in cols]
        rate = r["size"] / (r["put"] / 1000) / 1e6
        lines.append(f"| {human_bytes(r['size'])} | {r['n']} | " + " | ".join(cells) +
                     f" | {rate:.0f} | {min(1, small / r['put']):.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sizes", default="4K,64K,256K,1M,4M,16M,64M")
    ap.add_argument("--boto3", action="store_true", help="also time boto3 (pip install boto3)")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp:
        work = Path(tmp)
        weed = start_seaweed(work / "weed", access_key=f"bench{secrets.token_hex(4)}",
                             secret_key=secrets.token_hex(16), bucket="bench")
        try:
            store = S3ObjectStore.from_url(weed.url("p"), env=weed.env)
            boto = None
            if args.boto3:
                import boto3
                boto = boto3.client("s3", endpoint_url=weed.endpoint, aws_access_key_id=weed.access_key,
                                    aws_secret_access_key=weed.secret_key, region_name="us-east-1")
            print(report(measure(store, sizes, args.rounds, work, boto, weed.bucket, "p")))
        finally:
            weed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
