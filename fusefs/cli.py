"""``sessionfs mount`` and ``sessionfs umount``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from store.engine import memory
from store.services import recompress
from store.engine.store import DEFAULT_CACHE_BYTES

from . import daemon


def parse_size(text: str) -> int:
    """'100M', '2G', '512k' or plain bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 100M or 2G)") from None


def register(sub) -> None:
    p = sub.add_parser("mount", help="mount a store as a filesystem")
    p.add_argument("store", help="store directory (created if missing)")
    p.add_argument("mountpoint")
    p.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground")
    p.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES,
                   help="decoded-block cache bound (default 100M)")
    p.add_argument("--memory-limit", type=parse_size, default=memory.DEFAULT_LIMIT,
                   help="the daemon's resident memory bound, cache included (default 512M)")
    p.add_argument("--allow-other", action="store_true", help="let other users in (permission bits decide)")
    p.add_argument("--debug", action="store_true", help="log every FUSE request")
    recompress.add_background_arguments(p)
    p.set_defaults(func=cmd_mount)
    u = sub.add_parser("umount", help="commit everything queued, unmount, wait for the daemon to exit")
    u.add_argument("mountpoint")
    u.add_argument("--timeout", type=float, default=120.0)
    u.set_defaults(func=cmd_umount)


def cmd_mount(args) -> int:
    from store import Store
    budget = memory.plan(args.memory_limit, args.cache_size)
    daemon.preflight(args.store, args.mountpoint)     # in use, not a directory...: say so, change nothing
    Store.init(args.store, exist_ok=True)
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)

    def run(ready=None):
        daemon.serve(args.store, args.mountpoint, memory=budget, allow_other=args.allow_other,
                     debug=args.debug, ready=ready, store_options=recompress.background_kwargs(args))

    if args.foreground:
        run()
        return 0
    return daemon.daemonize(run, Path(args.store) / "sessionfs.log")


def cmd_umount(args) -> int:
    daemon.unmount(args.mountpoint, timeout=args.timeout)
    return 0
