"""``sessionfs mount`` and ``sessionfs umount``.

``register`` is published in the ``sessionfs.commands`` entry-point group (pyproject.toml),
which the ``sessionfs`` command line reads: store never names this package."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from store import Store
from store.engine import memory
from store.core.units import parse_size
from store.engine.backends import DEFAULT_DISK_CACHE
from store.engine.store import DEFAULT_CACHE_BYTES
from store.services.background import maintenance
from store.services.gc import DEFAULT_GRACE
from store.services.recompress import DEFAULT_COLD_AGE, DEFAULT_CPU_SHARE, DEFAULT_LEVEL

from . import daemon


def register(sub) -> None:
    p = sub.add_parser("mount", help="mount a store as a filesystem")
    p.add_argument("store", help="store directory (created if missing)")
    p.add_argument("mountpoint")
    p.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground")
    p.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES,
                   help="decoded-block cache bound (default 100M)")
    p.add_argument("--memory-limit", type=parse_size, default=memory.DEFAULT_LIMIT,
                   help="the daemon's resident memory bound, cache included (default 512M)")
    p.add_argument("--disk-cache", type=parse_size, default=DEFAULT_DISK_CACHE,
                   help="bound of the local cache of a shared store's objects in STORE/cache (default 1G)")
    p.add_argument("--allow-other", action="store_true", help="let other users in (permission bits decide)")
    p.add_argument("--debug", action="store_true", help="log every FUSE request")
    add_background_arguments(p)
    p.set_defaults(func=cmd_mount)
    u = sub.add_parser("umount", help="commit everything queued, unmount, wait for the daemon to exit")
    u.add_argument("mountpoint")
    u.add_argument("--timeout", type=float, default=120.0)
    u.set_defaults(func=cmd_umount)


def cmd_mount(args) -> int:
    budget = memory.plan(args.memory_limit, args.cache_size)
    daemon.preflight(args.store, args.mountpoint)     # in use, not a directory...: say so, change nothing
    Store.init(args.store, exist_ok=True)
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)

    def run(ready=None):
        daemon.serve(args.store, args.mountpoint, memory=budget, allow_other=args.allow_other,
                     debug=args.debug, ready=ready,
                     store_options={**background_kwargs(args), "disk_cache": args.disk_cache})

    if args.foreground:
        run()
        return 0
    return daemon.daemonize(run, Path(args.store) / "sessionfs.log")


def cmd_umount(args) -> int:
    daemon.unmount(args.mountpoint, timeout=args.timeout)
    return 0


def add_background_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's maintenance flags; ``background_kwargs`` turns them into ``Store.open``
    keyword arguments."""
    parser.add_argument("--compress", dest="compress", action="store_true", default=True,
                        help="recompress cold data in the background (default)")
    parser.add_argument("--no-compress", dest="compress", action="store_false",
                        help="no background recompression")
    parser.add_argument("--compress-level", type=int, default=DEFAULT_LEVEL, metavar="LEVEL",
                        help=f"zstd level for cold data (default {DEFAULT_LEVEL})")
    parser.add_argument("--cold-age", type=float, default=DEFAULT_COLD_AGE, metavar="SECONDS",
                        help=f"recompress blocks written at least this long ago (default {DEFAULT_COLD_AGE:.0f})")
    parser.add_argument("--cpu-share", type=float, default=DEFAULT_CPU_SHARE, metavar="SHARE",
                        help=f"share of one core the compressor may use (default {DEFAULT_CPU_SHARE})")
    parser.add_argument("--no-gc", dest="gc", action="store_false", default=True,
                        help="no background garbage collection")
    parser.add_argument("--gc-grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                        help=f"reclaim chunks unreferenced for at least this long (default {DEFAULT_GRACE:.0f})")


def background_kwargs(args) -> dict:
    return dict(maintenance=maintenance(gc=args.gc, gc_grace=args.gc_grace, compress=args.compress,
                                        level=args.compress_level, cold_age=args.cold_age, cpu_share=args.cpu_share))
