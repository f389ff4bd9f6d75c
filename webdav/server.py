"""The WebDAV server: WsgiDAV over the store, behind the path guard, on cheroot threads.

Authentication is always on (Basic or Digest; Digest is offered first), with one user
whose password comes from the environment (``SESSIONFS_PASSWORD``), never from a command
line. Locks (class 2) live in this process's memory: a restart ends them, as a reboot
ends a client's. With a certificate and key the server speaks https only.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp

from store.core.errors import BadInputError
from store.services.serving import Serving

from .guard import PathGuard
from .provider import StoreProvider

log = logging.getLogger("sessionfs.webdav")

PASSWORD_ENV = "SESSIONFS_PASSWORD"
DEFAULT_LISTEN = "127.0.0.1:4918"
THREADS = 16
REALM = "sessionfs"


@dataclass(frozen=True)
class WebDAVOptions:
    host: str
    port: int
    user: str
    password: str
    cert: str | None = None
    key: str | None = None

    @classmethod
    def parse(cls, listen: str, user: str, cert: str | None = None, key: str | None = None) -> "WebDAVOptions":
        """From ``HOST:PORT``, the user name and the TLS files; the password from the
        environment. BadInputError says what is wrong."""
        host, sep, port = listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise BadInputError(f"--listen {listen!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise BadInputError(f"set the WebDAV password in the environment variable {PASSWORD_ENV}")
        if not user:
            raise BadInputError("a WebDAV user name is required (--user)")
        if bool(cert) != bool(key):
            raise BadInputError("https needs both a certificate (--cert) and its key (--key)")
        for f in (cert, key):
            if f and not os.path.isfile(f):
                raise BadInputError(f"{f}: no such file")
        return cls(host, int(port), user, password, cert, key)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def application(store, serving: Serving, options: WebDAVOptions):
    """The WSGI application: the path guard in front of WsgiDAV over ``store``."""
    config = {
        "provider_mapping": {"/": StoreProvider(store, serving)},
        "simple_dc": {"user_mapping": {"*": {options.user: {"password": options.password}}}},
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": True,
                               "default_to_digest": True, "trusted_auth_header": None},
        "lock_storage": True,
        "property_manager": None,
        "dir_browser": {"enable": True, "response_trailer": "sessionfs", "davmount": False,
                        "ms_sharepoint_support": False, "libre_office_support": False},
        "logging": {"enable": False},
        "verbose": 1,
        "suppress_version_info": True,
    }
    return PathGuard(WsgiDAVApp(config))


class WebDAVServer:
    """Serves a store over WebDAV on threads of this process until ``stop``."""

    def __init__(self, store, serving: Serving, options: WebDAVOptions, threads: int = THREADS):
        self.options = options
        self._server = wsgi.Server((options.host, options.port), application(store, serving, options),
                                   numthreads=threads, server_name=REALM, timeout=60)
        if options.cert:
            from cheroot.ssl.builtin import BuiltinSSLAdapter
            self._server.ssl_adapter = BuiltinSSLAdapter(options.cert, options.key)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.bind_addr[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.options.cert else 'http'}://{host}:{port}/"

    def start(self) -> None:
        """Bind (an error if the address is taken) and serve in a thread."""
        self._server.prepare()
        if not self.options.loopback and not self.options.cert:
            log.warning("serving %s beyond this machine without TLS: passwords and files cross the network "
                        "readable (give --cert and --key)", self.url)
        self._thread = threading.Thread(target=self._server.serve, name="sessionfs-webdav", daemon=True)
        self._thread.start()
        log.info("WebDAV at %s", self.url)

    def stop(self) -> None:
        """Stop accepting, let requests in progress finish (cheroot's shutdown timeout)."""
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
