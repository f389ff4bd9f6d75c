"""Opening a store's backends from its configuration (``store.core.config``).

The default store keeps its objects in the directory (``packs/``, ``LocalObjectStore``) and
its catalog in ``catalog.db`` (``SqliteCatalog``); a scale-out store keeps them in an
S3-compatible bucket and a PostgreSQL database named by ``config.json``, which
``sessionfs init`` writes. This module is the only one that knows the implementations: the
rest of the engine sees ``ObjectStore``, ``Packer`` and ``Catalog``. The scale-out clients
are imported only when a store uses them, so the default needs neither installed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path

import orjson

from store.backends.catalog.interface import Catalog
from store.backends.catalog.sqlite.catalog import SqliteCatalog
from store.backends.objects.packs import Packer, local_packer
from store.core.config import LOCAL_OBJECTS, StoreConfig, parse_config, s3_location
from store.core.errors import FormatError

CONFIG_NAME = "config.json"
CATALOG_NAME = "catalog.db"
#: The local cache of object ranges of a scale-out store (``--disk-cache``).
DEFAULT_DISK_CACHE = 1 << 30


def read_config(root: Path) -> StoreConfig | None:
    """The store's configuration; the default for a local store; None when ``root`` holds no store."""
    path = root / CONFIG_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return StoreConfig() if (root / CATALOG_NAME).exists() else None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"{path} is not valid JSON ({exc}); it names where the store's data lives") from None
    return parse_config(data, str(path))


def write_config(root: Path, config: StoreConfig) -> None:
    """Write ``config.json`` whole (temporary name, fsync, rename): a store is never half-configured."""
    tmp = root / (CONFIG_NAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, orjson.dumps(config.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / CONFIG_NAME)


def open_catalog(root: Path, config: StoreConfig, *, readonly: bool, reader_cache_kib: int | None = None) -> Catalog:
    if not config.shared:
        extra = {} if reader_cache_kib is None else {"reader_cache_kib": reader_cache_kib}
        return SqliteCatalog(root / CATALOG_NAME, readonly=readonly, **extra)
    from store.backends.catalog.postgres.catalog import PostgresCatalog
    return PostgresCatalog(config.catalog, readonly=readonly)


def open_packer(root: Path, config: StoreConfig, *, seal_every_commit: bool = False,
                disk_cache: int = DEFAULT_DISK_CACHE) -> Packer:
    """The packer over the store's objects: local ones, or S3 objects behind the local disk
    cache (every commit's pack put before the commit: other mounts read the objects)."""
    if config.objects == LOCAL_OBJECTS:
        return local_packer(root, seal_every_commit=seal_every_commit)
    from store.backends.objects.disk_cache import DiskCachedObjects
    from store.backends.objects.s3 import S3_PACK_TARGET_SIZE, S3ObjectStore
    bucket, prefix = s3_location(config.objects)
    # The server's create-only PUT was checked when this directory was set up (``init``).
    remote = S3ObjectStore(bucket, prefix, endpoint=config.endpoint, probe=False)
    return Packer(DiskCachedObjects(remote, root / "cache", disk_cache), root / "packing", S3_PACK_TARGET_SIZE,
                  seal_every_commit=True)


def create_catalog(root: Path, store_id: str) -> Catalog:
    """A new, empty SQLite catalog for the store in ``root``, written under a temporary name
    (``install_catalog`` moves it in place once its tree exists)."""
    tmp = root / (CATALOG_NAME + ".new")
    SqliteCatalog.initialize(tmp, store_id)
    return SqliteCatalog(tmp)


def install_catalog(root: Path) -> None:
    os.replace(root / (CATALOG_NAME + ".new"), root / CATALOG_NAME)


def join_or_create_shared(config: StoreConfig, store_id: str) -> tuple[StoreConfig, Catalog | None]:
    """Connect a new STORE directory to a scale-out store: the objects' bucket must refuse a
    second create-only put (``probe_create_only``), then the catalog either already holds a
    store, which this directory joins (its objects location must match), or is empty and gets
    one. Returns the configuration to write and, for a new store, its open catalog (to fill
    with the root tree)."""
    from store.backends.catalog.postgres.catalog import PostgresCatalog
    from store.backends.objects.s3 import S3ObjectStore
    bucket, prefix = s3_location(config.objects)
    S3ObjectStore(bucket, prefix, endpoint=config.endpoint).close()      # probes create-only PUT
    found = PostgresCatalog.identity(config.catalog)
    if found is not None:
        if found["objects"] != config.objects:
            raise FormatError(f"the catalog {config.catalog} holds a store whose objects are at "
                              f"{found['objects']}, not {config.objects}; give that --objects to join it")
        return replace(config, store_id=found["store_id"], writer_id=secrets.token_hex(8)), None
    PostgresCatalog.initialize(config.catalog, store_id, config.objects)
    return replace(config, store_id=store_id, writer_id=secrets.token_hex(8)), PostgresCatalog(config.catalog)
