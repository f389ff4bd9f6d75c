"""``mount.fuse.sessionfs`` / ``mount.sessionfs``: the helper mount(8) runs for sessionfs.

With the helper on mount(8)'s search path (``/sbin/mount.fuse.sessionfs``),
``mount -t fuse.sessionfs STORE MNT -o OPTS`` and an fstab line work::

    /home/alice/.local/share/sessionfs  /home/alice/sessions  fuse.sessionfs  noauto,user,cache_size=200M  0 0

mount(8) calls ``mount.fuse.sessionfs STORE MNT [-sfnvrw] [-o OPTS] [-t TYPE] [-N NS]``;
the helper translates that into ``sessionfs mount STORE MNT [flags]`` and runs it (as
``python -P -m store.cli`` with this interpreter, so no PATH is needed); that command
daemonizes and returns once the mount is up (what mount(8) expects of a helper).

Options (``-o``, comma-separated, may be repeated):

``allow_other``              ``--allow-other``
``cache_size=SIZE``          ``--cache-size SIZE`` (``cache-size=`` too; 100M, 2G, ...)
``memory_limit=SIZE``        ``--memory-limit SIZE`` (``memory-limit=`` too)
``debug``                    ``--debug``
``log_level=LEVEL``          ``--log-level LEVEL``
``setuid=USER``              run the daemon as USER (when mount(8) runs as root, e.g. at boot)

mount(8) and kernel options that need nothing from sessionfs are accepted and
ignored: ``defaults rw auto noauto user nouser users owner group nofail _netdev
exec noexec suid nosuid dev nodev atime noatime relatime strictatime
nodiratime lazytime async default_permissions`` and any ``x-*`` or
``comment=*``. ``ro`` (and ``-r``) is refused: a sessionfs mount is
read-write. Any other option is an error naming it, unless ``-s`` (sloppy)
is given, which ignores it with a warning. ``-f`` (fake) prints the command
and does nothing; ``-v`` prints it and mounts.

Exit status: 0 mounted; 1 bad invocation; 32 the mount failed (mount(8)'s
convention); the message is on stderr.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

_ARGV0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
PROG = _ARGV0 if _ARGV0.startswith("mount.") else "mount.sessionfs"

EXIT_USAGE = 1
EXIT_MOUNT_FAILURE = 32

#: Options mount(8) or the kernel handle, or that have no meaning for sessionfs.
IGNORED = frozenset({
    "defaults", "rw", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
    "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "nodiratime", "diratime", "lazytime", "nolazytime", "async",
    "default_permissions", "silent", "loud",
})
IGNORED_PREFIXES = ("x-", "comment=")
FSTYPES = ("fuse.sessionfs", "sessionfs", "fuse")


class HelperError(Exception):
    """Bad invocation: the message says what, exit status EXIT_USAGE."""


@dataclass
class Invocation:
    store: str
    mountpoint: str
    args: list[str] = field(default_factory=list)      # after "sessionfs mount STORE MNT"
    log_level: str | None = None
    setuid: str | None = None
    fake: bool = False
    verbose: bool = False
    warnings: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        """The argv of the ``sessionfs`` CLI this stands for."""
        head = ["sessionfs"] + (["--log-level", self.log_level] if self.log_level else [])
        return [*head, "mount", self.store, self.mountpoint, *self.args]


def _split_options(text: str) -> list[str]:
    return [opt for opt in text.split(",") if opt]


def parse_args(argv: list[str]) -> Invocation:
    """Parse mount(8)'s helper calling convention; HelperError on anything wrong."""
    positional: list[str] = []
    options: list[str] = []
    sloppy = fake = verbose = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-o" or arg == "-t" or arg == "-N":
            if i + 1 >= len(argv):
                raise HelperError(f"option {arg} needs a value")
            value = argv[i + 1]
            if arg == "-o":
                options += _split_options(value)
            elif arg == "-t" and value not in FSTYPES:
                raise HelperError(f"filesystem type {value!r}: this helper mounts fuse.sessionfs")
            elif arg == "-N":
                raise HelperError("-N (mount namespaces) is not supported")
            i += 2
            continue
        if arg.startswith("-o") and len(arg) > 2:
            options += _split_options(arg[2:])
        elif arg.startswith("-") and len(arg) > 1 and arg != "--":
            for flag in arg[1:]:
                if flag == "s":
                    sloppy = True
                elif flag == "f":
                    fake = True
                elif flag == "v":
                    verbose = True
                elif flag in "nwi":
                    pass   # no mtab / read-write / no helper recursion: nothing to do
                elif flag == "r":
                    options.append("ro")
                elif flag == "h":
                    raise HelperError(__doc__.strip().splitlines()[0])
                else:
                    raise HelperError(f"unknown flag -{flag}")
        elif arg != "--":
            positional.append(arg)
        i += 1
    if len(positional) != 2:
        raise HelperError(f"expected STORE and MOUNTPOINT, got {len(positional)} arguments "
                          f"(usage: {PROG} STORE MOUNTPOINT [-o options])")
    store, mountpoint = positional
    for prefix in ("sessionfs#", "sessionfs:"):     # fuse's "type#source" and our fsname form
        if store.startswith(prefix):
            store = store[len(prefix):]
    inv = Invocation(store=store, mountpoint=mountpoint, fake=fake, verbose=verbose)
    for opt in options:
        name, eq, value = opt.partition("=")
        key = name.replace("-", "_")
        if key == "allow_other" and not eq:
            inv.args.append("--allow-other")
        elif key == "debug" and not eq:
            inv.args.append("--debug")
        elif key in ("cache_size", "memory_limit") and value:
            inv.args += ["--" + key.replace("_", "-"), value]
        elif key == "log_level" and value:
            inv.log_level = value
        elif key == "setuid" and value:
            inv.setuid = value
        elif key == "ro" and not eq:
            raise HelperError("read-only mounts are not supported: a sessionfs mount is read-write "
                              "(use 'sessionfs ls/cat' to read a store without mounting)")
        elif opt in IGNORED or opt.startswith(IGNORED_PREFIXES):
            continue
        elif sloppy:
            inv.warnings.append(f"ignoring unknown option {opt!r} (-s)")
        else:
            raise HelperError(f"unknown mount option {opt!r}")
    if inv.args.count("--allow-other") > 1:
        inv.args.remove("--allow-other")
    return inv


def drop_privileges(user: str) -> None:
    """Become ``user`` (name or uid) for the daemon; only root can switch to another user."""
    import pwd
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise HelperError(f"setuid={user}: no such user") from None
    if os.geteuid() == pw.pw_uid:
        return
    if os.geteuid() != 0:
        raise HelperError(f"setuid={user}: only root can mount as another user")
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)


def _cli_environment() -> dict[str, str]:
    """The environment for ``python -P -m store.cli``: it finds the store package this process
    uses (an installed one or a checkout), never a ``store`` directory in mount(8)'s cwd."""
    spec = importlib.util.find_spec("store")
    where = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else ""
    path = [p for p in (where, os.environ.get("PYTHONPATH")) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)} if path else dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        inv = parse_args(argv)
        for warning in inv.warnings:
            print(f"{PROG}: {warning}", file=sys.stderr)
        if inv.fake or inv.verbose:
            print(shlex.join(inv.command()), file=sys.stderr if inv.verbose and not inv.fake else sys.stdout)
        if inv.fake:
            return 0
        if inv.setuid:
            drop_privileges(inv.setuid)
    except HelperError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code = subprocess.call([sys.executable, "-P", "-m", "store.cli", *inv.command()[1:]], env=_cli_environment())
    return 0 if code == 0 else EXIT_MOUNT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
