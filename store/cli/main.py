"""The ``sessionfs`` command line: the parser, the registration of command groups, ``main``.

Command groups are modules that each provide ``register(subparsers)``: it adds its
parsers with ``subparsers.add_parser(...)`` and binds a handler with
``parser.set_defaults(func=handler)``, where ``handler(args) -> int`` returns the exit
status. ``main`` registers store's own groups (``COMMAND_GROUPS``), then every
``register`` published in the ``sessionfs.commands`` entry-point group (the FUSE
front end publishes ``mount`` and ``umount`` there; store never names it). Handlers
raise ``StoreError`` / ``OSError`` for failures; ``main`` turns those into one line
``sessionfs: <message>`` on stderr and exit status 1 (argparse's usage errors exit 2).
No traceback ever reaches the user unless ``--log-level debug`` is given.

Commands that only read (``ls``, ``cat``, ``stats``) open the store
read-only: they never take the write lock, so they work beside a mounted
daemon and never block it. A read-only open sees what is committed in the
catalog; writes still queued or staged in a running daemon are not visible.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points, version
from typing import Callable

from store.cli import files, gc, migrate, recompress, search, verify
from store.cli.common import error_message
from store.core.errors import StoreError

PROG = "sessionfs"

#: Entry-point group whose objects are ``register(subparsers)`` functions of other packages.
ENTRY_POINT_GROUP = "sessionfs.commands"

#: Store's own command groups, registered in this order.
COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [
    files.register, migrate.register, verify.register, gc.register, recompress.register, search.register]

#: Extra ``register(subparsers)`` callables (for embedding and tests); called last.
REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = []

#: Exit status after the reader of our stdout went away (as a shell reports a SIGPIPE death).
EXIT_BROKEN_PIPE = 128 + 13

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

log = logging.getLogger("sessionfs.cli")


def command_entry_points() -> list[EntryPoint]:
    """The installed ``sessionfs.commands`` entry points, by name."""
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _register_entry_points(sub: argparse._SubParsersAction) -> list[str]:
    """Register every entry point's commands; returns why some could not be offered."""
    unavailable = []
    for ep in command_entry_points():
        try:
            register_fn = ep.load()
        except ImportError as exc:
            if exc.name is not None and (ep.module == exc.name or ep.module.startswith(exc.name + ".")):
                log.debug("%s is not installed; its commands are not offered", ep.module)
            else:
                unavailable.append(f"{ep.name} ({ep.value}): {exc}")
            continue
        except AttributeError:
            unavailable.append(f"{ep.name} ({ep.value}): no such register(subparsers) function")
            continue
        register_fn(sub)
    return unavailable


def _add_log_level(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=default,
                        help="log messages from this level up (default: warning)")


class _SubcommandParser(argparse.ArgumentParser):
    """Every subcommand also accepts the global --log-level (after the subcommand name)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _add_log_level(self, argparse.SUPPRESS)


def _version() -> str:
    try:
        return version("sessionfs")
    except Exception:  # noqa: BLE001 - not installed: run from a checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="A deduplicating, crash-safe store and FUSE filesystem for recorded work sessions.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    _add_log_level(parser, "warning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    for register_fn in COMMAND_GROUPS:
        register_fn(sub)
    unavailable = _register_entry_points(sub)
    for fn in REGISTRARS:
        fn(sub)
    if unavailable:
        parser.epilog = "unavailable commands: " + "; ".join(unavailable)
    return parser


def _configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(numeric)


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:      # --help, --version, usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _configure_logging(args.log_level)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required (try '{PROG} --help')", file=sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (StoreError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        log.debug("command failed", exc_info=True)
        print(f"{PROG}: {error_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
