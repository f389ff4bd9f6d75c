"""Sizes for people."""

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
