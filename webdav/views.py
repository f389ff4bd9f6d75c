"""The root and the read-only views as WebDAV collections: ``tags/``, ``by-date/`` and
``search/<q>/`` (what they list: ``store.services.views``, as for the mount), and
``.sessionfs/stats.json``. A session listed by a view is the session's directory itself,
read-only (the mount shows a symbolic link to it; WebDAV has none).
"""

from __future__ import annotations

import io

from wsgidav import util
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from store.core.errors import FsError
from store.services import views as views_api

from .errors import translated
from .resources import ReadOnly, StoreCollection, decode, encode

CONTROL = ".sessionfs"
STATS = "stats.json"


class RootCollection(StoreCollection):
    """The root: sessions/ and import/ from the store, the views beside them."""

    VIRTUAL = [decode(n) for n in views_api.ROOTS] + [CONTROL]

    def get_member_names(self):
        return super().get_member_names() + self.VIRTUAL

    def get_member_list(self):
        return super().get_member_list() + [self.get_member(n) for n in self.VIRTUAL]

    def get_member(self, name: str):
        path = util.join_uri(self.path, name)
        if name == CONTROL:
            return ControlDir(path, self.environ)
        kind = views_api.ROOTS.get(encode(name))
        if kind is not None:
            return ViewDir(path, self.environ, kind, None)
        return super().get_member(name)


class ViewDir(ReadOnly, DAVCollection):
    """A directory of a view: (kind, key) as ``store.services.views`` names them."""

    def __init__(self, path: str, environ: dict, kind: str, key):
        super().__init__(path, environ)
        self.kind, self.key = kind, key

    @property
    def store(self):
        return self.provider.store

    def get_display_name(self) -> str:
        return util.get_uri_name(self.path)

    def get_member_names(self):
        with translated(self.path):
            return [decode(n) for n in views_api.listing(self.store, self.kind, self.key)]

    def get_member(self, name: str):
        path = util.join_uri(self.path, name)
        raw = encode(name)
        child = views_api.CHILD_KIND[self.kind]
        with translated(path):
            if child == "query":
                try:
                    return ViewDir(path, self.environ, "query", views_api.query_of(raw))
                except FsError:
                    return None
            if self.kind == "query":
                found = raw in views_api.listing(self.store, "query", self.key)
            else:
                found = views_api.contains(self.store, self.kind, self.key, raw)
            if not found:
                return None
            if child != "link":
                return ViewDir(path, self.environ, child, name)
            sessions = self.store.resolve("sessions")
            row = self.store.lookup(sessions, raw)
        return StoreCollection(path, self.environ, row, sessions, raw, writable=False)


class ControlDir(ReadOnly, DAVCollection):
    """``.sessionfs/``: the live statistics."""

    def get_display_name(self) -> str:
        return CONTROL

    def get_member_names(self):
        return [STATS]

    def get_member(self, name: str):
        return StatsFile(util.join_uri(self.path, name), self.environ) if name == STATS else None


class StatsFile(ReadOnly, DAVNonCollection):
    """``.sessionfs/stats.json``, rendered once per request."""

    def __init__(self, path: str, environ: dict):
        super().__init__(path, environ)
        self._body: bytes | None = None

    def _rendered(self) -> bytes:
        if self._body is None:
            with translated(self.path):
                self._body = self.provider.serving.stats_json()
        return self._body

    def get_display_name(self) -> str:
        return STATS

    def get_content_length(self) -> int:
        return len(self._rendered())

    def get_content_type(self) -> str:
        return "application/json"

    def get_etag(self):
        return None

    def support_etag(self) -> bool:
        return False

    def support_ranges(self) -> bool:
        return True

    def get_content(self):
        return io.BytesIO(self._rendered())
