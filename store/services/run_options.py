"""The options of a front end that keeps a writable store open (``sessionfs mount``,
``sessionfs serve``): the memory bounds and the background maintenance, as argparse
arguments, and what they give ``Store.open``.
"""

from __future__ import annotations

import argparse

from store.core.units import parse_size
from store.engine import memory
from store.engine.backends import DEFAULT_DISK_CACHE
from store.engine.store import DEFAULT_CACHE_BYTES

from .background import maintenance
from .gc import DEFAULT_GRACE
from .recompress import DEFAULT_COLD_AGE, DEFAULT_CPU_SHARE, DEFAULT_LEVEL


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
    """``Store.open`` keyword arguments of the background and memory flags."""
    return dict(maintenance=maintenance(gc=args.gc, gc_grace=args.gc_grace, compress=args.compress,
                                        level=args.compress_level, cold_age=args.cold_age, cpu_share=args.cpu_share),
                disk_cache=args.disk_cache)


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cache-size``, ``--memory-limit`` (``memory_plan`` divides them) and ``--disk-cache``."""
    parser.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES,
                        help="decoded-block cache bound (default 100M)")
    parser.add_argument("--memory-limit", type=parse_size, default=memory.DEFAULT_LIMIT,
                        help="the daemon's resident memory bound, cache included (default 512M)")
    parser.add_argument("--disk-cache", type=parse_size, default=DEFAULT_DISK_CACHE,
                        help="bound of the local cache of a shared store's objects in STORE/cache (default 1G)")


def memory_plan(args) -> memory.MemoryPlan:
    return memory.plan(args.memory_limit, args.cache_size)
