"""What the read-only views at a front end's root contain, for every front end (the FUSE
mount, the WebDAV server): which names ``tags/``, ``by-date/`` and ``search/<q>/`` list,
whether a name is in one of them, and which names are queries.

::

    tags/<tag>/<session-id>            newest first
    by-date/<YYYY-MM-DD>/<session-id>  by start time (UTC day)
    search/<any query>/<session-id>    best first (at most ``search.LISTING_LIMIT``)

A view directory is a (kind, key) pair: the roots are ``("tags", None)``, ``("dates",
None)`` and ``("queries", None)``; below them ``("tag", <tag>)``, ``("date", <day>)`` and
``("query", <text>)``. Names are bytes as a directory entry has them. Every call reads the
catalog on the calling thread (a worker thread of the front end) and, except a search,
first waits for files already closed to be committed (they are in the listing).
"""

from __future__ import annotations

import errno
import logging
import re
from datetime import date

from store.core.errors import BadInputError, FsError, StoreError

from . import search as search_api

log = logging.getLogger("sessionfs.views")

#: The view roots: directory name at the root -> kind of view directory.
ROOTS = {b"tags": "tags", b"by-date": "dates", b"search": "queries"}
#: The kind of the directories each view directory lists ("link": a session id).
CHILD_KIND = {"tags": "tag", "dates": "date", "queries": "query", "tag": "link", "date": "link", "query": "link"}
_DATE = re.compile(rb"\d{4}-\d{2}-\d{2}")


def valid_name(name: bytes) -> bool:
    """Can ``name`` be one directory entry?"""
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name and len(name) <= 255


def query_of(name: bytes) -> str:
    """The query a name under ``search/`` stands for; FsError ENOENT for names that are not
    queries (names starting with "." are what file managers probe for), EINVAL for text that
    does not parse."""
    if not valid_name(name) or name.startswith(b"."):
        raise FsError(errno.ENOENT, "not a query")
    try:
        text = name.decode("utf-8")
        search_api.parse_query(text)
    except (UnicodeDecodeError, BadInputError) as exc:
        raise FsError(errno.EINVAL, f"search/{name.decode('utf-8', 'replace')}: {exc}") from None
    return text


def _encode(names) -> list[bytes]:
    return [n.encode("utf-8", "surrogateescape") for n in names]


def listing(store, kind: str, key) -> list[bytes]:
    """The names in view directory (``kind``, ``key``), in listing order."""
    if kind != "query":
        store.settle()         # files closed before the listing are in it
    index = store.catalog.reader().search
    if kind == "tags":
        names = _encode(index.tags())
    elif kind == "dates":
        names = [d.encode() for d in index.start_days() if isinstance(d, str) and _DATE.fullmatch(d.encode())]
    elif kind == "queries":
        names = []
    elif kind == "tag":
        names = _encode(index.tagged(key))
    elif kind == "date":
        names = _encode(index.started_on(key))
    else:
        names = _encode(r.session_id for r in _search(store, key))
    return [n for n in names if valid_name(n)]


def _search(store, text: str):
    try:
        return search_api.search(store, text, limit=search_api.LISTING_LIMIT, snippets=False)
    except BadInputError as exc:
        raise FsError(errno.EINVAL, str(exc)) from None
    except StoreError as exc:
        log.warning("search/%s: %s", text, exc)
        raise FsError(errno.EIO, str(exc)) from None


def contains(store, kind: str, key, name: bytes) -> bool:
    """Whether ``name`` is an entry of view directory (``kind``, ``key``) other than a query's
    (a query's entries are its listing; front ends keep that listing for a moment)."""
    if not valid_name(name):
        return False
    text = name.decode("utf-8", "surrogateescape")
    store.settle()
    index = store.catalog.reader().search
    if kind == "tags":
        return bool(index.tagged(text, limit=1))
    if kind == "dates":
        return bool(_DATE.fullmatch(name)) and _valid_date(text) and bool(index.started_on(text, limit=1))
    if kind == "tag":
        return index.is_tagged(text, key)
    if kind == "date":
        return index.is_started_on(text, key)
    return False


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
