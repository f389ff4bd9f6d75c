"""What every command group shares: ``CliError``, writing to stdout, one-line error
messages, opening the store named on the command line, the progress bar, ``human_bytes``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

from store.core.errors import StoreError
from store.core.units import human_bytes
from store.engine.store import Store

__all__ = ["CliError", "write_out", "error_message", "store_path", "open_store", "progress_bar", "human_bytes"]


class CliError(StoreError):
    """A failure the CLI itself detects; printed like any store error."""


def write_out(text: str) -> None:
    """Write text to stdout; names that are not UTF-8 go out as their original bytes."""
    data = text.encode("utf-8", "surrogateescape")
    buf = getattr(sys.stdout, "buffer", None)
    if buf is None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        return
    sys.stdout.flush()
    buf.write(data)


def error_message(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, OSError) and not isinstance(exc, StoreError):
        text = exc.strerror or str(exc)
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
        return text
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())   # one line, whatever the message held


def store_path(arg: str) -> Path:
    """The store directory named by a STORE argument (a mountpoint is not resolved yet)."""
    return Path(arg)


@contextlib.contextmanager
def open_store(arg: str, *, readonly: bool = True, **kwargs) -> Iterator[Store]:
    """Open the store named on the command line; read-only unless asked otherwise."""
    path = store_path(arg)
    if not path.exists():
        raise CliError(f"{arg}: no such store (the directory does not exist); create one with 'sessionfs init'")
    if not path.is_dir():
        raise CliError(f"{arg}: not a directory, so not a sessionfs store")
    store = Store.open(path, readonly=readonly, **kwargs)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def progress_bar(desc: str, *, unit: str = "B", enabled: bool | None = None):
    """A tqdm bar on stderr (only when it is a terminal) driven by ``update(done, total)``."""
    from tqdm import tqdm
    if enabled is None:
        enabled = sys.stderr.isatty()
    bar = tqdm(total=0, desc=desc, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000,
               disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    try:
        yield update
    finally:
        bar.close()
