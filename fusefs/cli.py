"""``sessionfs mount`` and ``sessionfs umount``.

``register`` is published in the ``sessionfs.commands`` entry-point group (pyproject.toml),
which the ``sessionfs`` command line reads: store never names this package."""

from __future__ import annotations

import logging
from pathlib import Path

from store import Store
from store.services.run_options import add_background_arguments, add_memory_arguments, background_kwargs, memory_plan

from . import daemon


def register(sub) -> None:
    p = sub.add_parser("mount", help="mount a store as a filesystem")
    p.add_argument("store", help="store directory (created if missing)")
    p.add_argument("mountpoint")
    p.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground")
    add_memory_arguments(p)
    p.add_argument("--allow-other", action="store_true", help="let other users in (permission bits decide)")
    p.add_argument("--debug", action="store_true", help="log every FUSE request")
    add_background_arguments(p)
    p.add_argument("--webdav", metavar="HOST:PORT",
                   help="also serve the store over WebDAV from the mount's daemon (password from SESSIONFS_PASSWORD)")
    p.add_argument("--webdav-user", metavar="NAME", help="the WebDAV user name (required with --webdav)")
    p.add_argument("--webdav-cert", metavar="PEM", help="TLS certificate: serve WebDAV over https")
    p.add_argument("--webdav-key", metavar="PEM", help="the certificate's private key")
    p.set_defaults(func=cmd_mount)
    u = sub.add_parser("umount", help="commit everything queued, unmount, wait for the daemon to exit")
    u.add_argument("mountpoint")
    u.add_argument("--timeout", type=float, default=120.0)
    u.set_defaults(func=cmd_umount)


def cmd_mount(args) -> int:
    budget = memory_plan(args)
    webdav = None
    if args.webdav:
        from webdav.server import WebDAVOptions      # only with --webdav: the webdav extra may be absent
        webdav = WebDAVOptions.parse(args.webdav, args.webdav_user, args.webdav_cert, args.webdav_key)
    daemon.preflight(args.store, args.mountpoint)     # in use, not a directory...: say so, change nothing
    Store.init(args.store, exist_ok=True)
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)

    def run(ready=None):
        daemon.serve(args.store, args.mountpoint, memory=budget, allow_other=args.allow_other,
                     debug=args.debug, ready=ready, store_options=background_kwargs(args), webdav=webdav)

    if args.foreground:
        run()
        return 0
    return daemon.daemonize(run, Path(args.store) / "sessionfs.log")


def cmd_umount(args) -> int:
    daemon.unmount(args.mountpoint, timeout=args.timeout)
    return 0
