"""The WsgiDAV provider: a request path -> its resource, walking the tree one name at a
time from the root (store names, then view names)."""

from __future__ import annotations

from wsgidav.dav_provider import DAVProvider

from store.backends.catalog.rows import ROOT_INO
from store.services.serving import Serving

from .errors import translated
from .views import RootCollection


class StoreProvider(DAVProvider):
    """Serves one open store (and its ``Serving``: import/ drops, stats.json)."""

    def __init__(self, store, serving: Serving):
        super().__init__()
        self.store = store
        self.serving = serving

    def is_readonly(self) -> bool:
        return self.store.readonly

    def get_resource_inst(self, path: str, environ: dict):
        with translated(path):
            root = RootCollection("/", environ, self.store.getattr(ROOT_INO), ROOT_INO, b"", writable=True)
        res = root
        for name in (p for p in path.split("/") if p):
            if not res.is_collection:
                return None
            res = res.get_member(name)
            if res is None:
                return None
        return res
