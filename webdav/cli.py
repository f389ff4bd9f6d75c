"""``sessionfs serve``: serve a store over WebDAV in the foreground until SIGINT/SIGTERM.

``register`` is published in the ``sessionfs.commands`` entry-point group (pyproject.toml).
"""

from __future__ import annotations

import logging
import signal
import threading

from store import Store
from store.services.run_options import add_background_arguments, add_memory_arguments, background_kwargs, memory_plan
from store.services.serving import Serving

from .server import DEFAULT_LISTEN, PASSWORD_ENV, WebDAVOptions, WebDAVServer

log = logging.getLogger("sessionfs.webdav")


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a store over WebDAV (macOS, Windows and Linux mount it natively)",
                       description=f"The password is read from the environment variable {PASSWORD_ENV}.")
    p.add_argument("store", help="store directory (created if missing)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN}: this machine only)")
    p.add_argument("--user", required=True, help="the user name clients log in with")
    p.add_argument("--cert", metavar="PEM", help="TLS certificate: serve https")
    p.add_argument("--key", metavar="PEM", help="the certificate's private key")
    add_memory_arguments(p)
    add_background_arguments(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    options = WebDAVOptions.parse(args.listen, args.user, args.cert, args.key)
    Store.init(args.store, exist_ok=True)
    with Store.open(args.store, memory=memory_plan(args), owner={"webdav": args.listen},
                    **background_kwargs(args)) as store:
        serve(store, options)
    log.info("stopped; every queued write is committed")
    return 0


def serve(store, options: WebDAVOptions) -> None:
    """Serve an open store until SIGINT or SIGTERM (main thread)."""
    serving = Serving(store)
    server = WebDAVServer(store, serving, options)
    server.start()
    serving.where["webdav"] = server.url
    serving.start()
    print(f"serving {store.root} at {server.url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
        serving.stop()
