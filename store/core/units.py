"""Sizes and times for people."""

import argparse
import re
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


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.I)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'512M', '1GiB', '2000000' -> bytes (binary units); an argparse ``type`` as it is."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size like 512M or 1G")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])
