"""Refuses request paths that could leave the tree, before WsgiDAV decodes them: a ``.``
or ``..`` segment, an encoded slash or backslash (``%2F``, ``%5C``: a name with a slash
in it is a path in disguise) and NUL, in the request URI or a Destination header."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


def refusal(raw: str) -> str | None:
    """Why the raw (still percent-encoded) path ``raw`` is refused, or None."""
    if "\0" in raw or _ENCODED_SEPARATOR.search(raw):
        return "encoded slashes and NUL are not allowed in paths"
    for segment in raw.split("/"):
        if unquote(segment, errors="surrogateescape") in (".", ".."):
            return "'.' and '..' are not allowed in paths"
    return None


class PathGuard:
    """WSGI middleware: 400 for a refused path, else the wrapped application."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        why = refusal(urlsplit(raw).path)
        destination = environ.get("HTTP_DESTINATION")
        if why is None and destination:
            why = refusal(urlsplit(destination).path)
        if why is None:
            return self.app(environ, start_response)
        body = f"{why}\n".encode()
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(body)))])
        return [body]
