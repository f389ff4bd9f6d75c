"""Sizes and times for people."""

import time


def human_bytes(n: int | float) -> str:
    """1536 -> '1.5 KiB'; binary units up to PiB."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    n = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def iso_ns(ns: int | None) -> str | None:
    """Nanoseconds since the epoch -> '2024-05-01T12:00:00Z' (UTC, seconds); None stays None."""
    if ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
