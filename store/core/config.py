"""A store's configuration: where its objects and its catalog live (``STORE/config.json``).

A store whose directory has no ``config.json`` is the default: objects in the directory
(``packs/``) and a SQLite catalog (``catalog.db``). A scale-out store names an
S3-compatible bucket and prefix (``s3://BUCKET/PREFIX``, with an optional endpoint URL) and
a PostgreSQL database (``postgresql://USER@HOST:PORT/DB``). The file holds no secrets: S3
credentials come from the standard AWS variables, the PostgreSQL password from libpq's
(``PGPASSWORD``, ``~/.pgpass``); a password written into the catalog URL is refused here.
Pure: dicts and strings in and out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import FormatError

CONFIG_FORMAT = 1
LOCAL_OBJECTS = "local"
SQLITE_CATALOG = "sqlite"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StoreConfig:
    objects: str = LOCAL_OBJECTS
    catalog: str = SQLITE_CATALOG
    endpoint: str | None = None
    store_id: str | None = None
    #: This directory's name among the writers of a shared store (``init`` makes it).
    writer_id: str | None = None

    @property
    def shared(self) -> bool:
        """Other mounts may use the same catalog and objects (a scale-out catalog)."""
        return self.catalog != SQLITE_CATALOG

    def to_dict(self) -> dict:
        return {"format": CONFIG_FORMAT, "store_id": self.store_id, "writer_id": self.writer_id,
                "objects": self.objects, "endpoint": self.endpoint, "catalog": self.catalog}

    @property
    def seq_key(self) -> str:
        """The meta key of this writer's last committed write sequence (one per writer: a row
        every mount's commits wrote would make them all conflict)."""
        return "last_seq" if self.writer_id is None else f"last_seq/{self.writer_id}"


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://BUCKET/PREFIX``; the prefix has no leading or trailing '/'."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise FormatError(f"objects location {url!r} is not of the form s3://BUCKET/PREFIX")
    if not _BUCKET.match(parts.netloc):
        raise FormatError(f"{parts.netloc!r} is not a valid S3 bucket name (3-63 lower-case letters, "
                          f"digits, dots and hyphens)")
    prefix = parts.path.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise FormatError(f"objects prefix {prefix!r} has an empty, '.' or '..' part")
    return parts.netloc, prefix


def catalog_url(url: str) -> str:
    """``url`` checked as a PostgreSQL URL without a password (the password stays in libpq's
    places: a STORE directory never holds one)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise FormatError(f"catalog {url!r} is not of the form postgresql://USER@HOST:PORT/DB")
    if parts.password is not None:
        raise FormatError("the catalog URL holds a password; give it in PGPASSWORD or ~/.pgpass instead "
                          "(the store directory and its config never hold secrets)")
    if not parts.path.strip("/"):
        raise FormatError(f"catalog {url!r} names no database (postgresql://USER@HOST:PORT/DB)")
    return url


def endpoint_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FormatError(f"S3 endpoint {url!r} is not an http:// or https:// URL")
    if parts.password is not None or parts.username is not None:
        raise FormatError("the S3 endpoint URL holds credentials; give them in AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY instead")
    return url.rstrip("/")


def make_config(objects: str | None, catalog: str | None, endpoint: str | None,
                store_id: str | None = None, writer_id: str | None = None) -> StoreConfig:
    """A checked configuration from ``init``'s options (None: the default of each)."""
    objects = objects or LOCAL_OBJECTS
    catalog = catalog or SQLITE_CATALOG
    if objects != LOCAL_OBJECTS:
        s3_location(objects)
    if catalog != SQLITE_CATALOG:
        catalog_url(catalog)
    if objects == LOCAL_OBJECTS and catalog != SQLITE_CATALOG:
        raise FormatError("a PostgreSQL catalog is shared by many mounts, so its objects must be shared too: "
                          "give --objects s3://BUCKET/PREFIX")
    if objects != LOCAL_OBJECTS and catalog == SQLITE_CATALOG:
        raise FormatError("objects on S3 need a catalog every mount can reach: give --catalog "
                          "postgresql://USER@HOST:PORT/DB")
    if endpoint is not None and objects == LOCAL_OBJECTS:
        raise FormatError("--endpoint is the S3 server's URL; it needs --objects s3://BUCKET/PREFIX")
    return StoreConfig(objects, catalog, endpoint_url(endpoint), store_id, writer_id)


def parse_config(data: object, where: str) -> StoreConfig:
    """The configuration in ``data`` (config.json's parsed JSON), or FormatError naming ``where``."""
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
        raise FormatError(f"{where} is not a sessionfs store configuration of format {CONFIG_FORMAT}")
    fields = {k: data.get(k) for k in ("objects", "catalog", "endpoint", "store_id", "writer_id")}
    if not all(v is None or isinstance(v, str) for v in fields.values()):
        raise FormatError(f"{where}: objects, catalog, endpoint, store_id and writer_id must be strings")
    try:
        return make_config(**fields)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
