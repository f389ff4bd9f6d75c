"""``S3ObjectStore``: the ``ObjectStore`` on an S3-compatible server (SeaweedFS, MinIO, AWS S3).

Object ``a/b`` is the key ``<prefix>a/b`` in the bucket. The client is obstore (synchronous
calls; the engine calls object stores from threads). Configuration comes from the standard
variables: ``AWS_ENDPOINT_URL`` (or an explicit endpoint; http and https), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` and ``AWS_CA_BUNDLE`` (a private
CA's PEM file). Credentials appear in no message, log or repr.

Create-only puts are single PUTs with ``If-None-Match: *`` (a conditional multipart upload is
not something the client offers, and packs are far below the 5 GiB single-PUT limit). A server
that ignores the condition would let two writers overwrite each other, so a store probes it
at open (``probe_create_only``) and refuses such a server.

Failures: a refused create is ``ObjectExistsError`` (unless the object holds exactly the bytes
put: a retried request whose first attempt landed), a missing object ``ObjectMissingError``
naming it, refused credentials ``OSError(EACCES)``, and a server that does not answer within
the bounded retries (exponential backoff, request timeouts) ``OSError(EIO)``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import obstore
from obstore import exceptions as obx
from obstore.store import S3Store

from store.core.errors import IntegrityError, StoreError
from .store import ObjectExistsError, ObjectMissingError, check_name

DEFAULT_REGION = "us-east-1"
# The pack size on S3 (contrib/bench/s3_bench.py on SeaweedFS, loopback): a PUT costs ~1-2 ms a
# request plus the bytes. At 4 MiB the request is a few % of the PUT and the throughput at its
# best (~100 MB/s for 1-4 MiB; the server splits larger objects and puts 8-64 MiB at 50-75
# MB/s), and an fsync'd commit (seal_every_commit) waits for no PUT larger than 4 MiB (~40 ms).
S3_PACK_TARGET_SIZE = 4 * 1024 * 1024
PROBE_PREFIX = "sessionfs-probe/"
_NOT_IMPLEMENTED = re.compile(r"status code: 501\b")
# The cause of a failed request, deep in obstore's message, said in a few words.
_HINTS = [("InvalidCertificate", "the server's TLS certificate is not trusted: AWS_CA_BUNDLE names a CA's PEM file"),
          ("ConnectionRefused", "connection refused"), ("TimedOut", "timed out"),
          ("kind: Timeout", "timed out"), ("dns error", "the endpoint's host name does not resolve")]


class CreateOnlyUnsupportedError(StoreError):
    """The server does not honour create-only PUTs, so many writers could overwrite objects."""


class S3ObjectStore:
    """Immutable objects under ``prefix`` in ``bucket`` of an S3-compatible server.

    ``timeout`` bounds one request (seconds); ``retries`` the retries of a failing request
    (exponential backoff from 0.1 s, all within ``4 * timeout``). With ``probe`` the server's
    create-only PUT is checked at once (``probe_create_only``)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 env: Mapping[str, str] | None = None, timeout: float = 30, retries: int = 5, probe: bool = True):
        env = os.environ if env is None else env
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            check_name(self.prefix[:-1])
        self.endpoint = endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise StoreError(f"no credentials for {self}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        self._secrets = tuple(s for s in (key, secret, env.get("AWS_SESSION_TOKEN")) if s)
        config = {"access_key_id": key, "secret_access_key": secret,
                  "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION}
        if env.get("AWS_SESSION_TOKEN"):
            config["token"] = env["AWS_SESSION_TOKEN"]
        if self.endpoint:
            scheme = urlsplit(self.endpoint).scheme
            if scheme not in ("http", "https"):
                raise StoreError(f"S3 endpoint {self.endpoint!r} is not an http:// or https:// URL")
            config["endpoint"] = self.endpoint
        client = {"timeout": timedelta(seconds=timeout), "connect_timeout": timedelta(seconds=min(timeout, 5)),
                  "allow_http": bool(self.endpoint) and self.endpoint.startswith("http://")}
        if env.get("AWS_CA_BUNDLE"):
            try:
                client["root_certificate"] = Path(env["AWS_CA_BUNDLE"]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise StoreError(f"AWS_CA_BUNDLE={env['AWS_CA_BUNDLE']}: cannot read a PEM file there ({exc})") from None
        retry = {"max_retries": retries, "retry_timeout": timedelta(seconds=4 * timeout),
                 "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5),
                             "base": 2}}
        self._s3 = S3Store(bucket, config=config, client_options=client, retry_config=retry)
        if probe:
            self.probe_create_only()

    @classmethod
    def from_url(cls, url: str, endpoint: str | None = None, **kw) -> "S3ObjectStore":
        """The store of ``s3://BUCKET/PREFIX``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise StoreError(f"not an S3 location: {url!r} (expected s3://BUCKET/PREFIX)")
        return cls(parts.netloc, parts.path, endpoint=endpoint, **kw)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self})"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _error(self, exc: Exception, op: str, name: str) -> Exception:
        """The store error for an obstore failure, its message free of credentials."""
        if isinstance(exc, (obx.AlreadyExistsError, obx.PreconditionError)):
            return ObjectExistsError(f"object {name} already exists in {self}; objects are never overwritten")
        if isinstance(exc, (FileNotFoundError, obx.NotFoundError)):
            return ObjectMissingError(f"object {name} is missing from {self}")
        text = str(exc)
        detail = text.split("\n", 1)[0] + "".join(
            f" ({hint})" for hint in dict.fromkeys(hint for cause, hint in _HINTS if cause in text))
        for secret in self._secrets:
            if len(secret) >= 8:                  # shorter ones are no real credential, and mangle text
                detail = detail.replace(secret, "***")
        if isinstance(exc, (obx.PermissionDeniedError, obx.UnauthenticatedError)):
            return OSError(errno.EACCES, f"{self} refused to {op} {name} (check the credentials): {detail}")
        if isinstance(exc, obx.NotSupportedError) or _NOT_IMPLEMENTED.search(detail):
            return OSError(errno.EOPNOTSUPP, f"{self} cannot {op} {name}: {detail}")
        return OSError(errno.EIO, f"object store {self} failed to {op} {name}: {detail}")

    # -- the ObjectStore interface ---------------------------------------------------------
    def put(self, name: str, data: bytes) -> None:
        key = self._key(name)
        try:
            obstore.put(self._s3, key, data, mode="create", use_multipart=False)
        except Exception as exc:
            err = self._error(exc, "put", name)
            if isinstance(err, ObjectExistsError) and self._holds(name, data):
                return
            raise err from None

    def put_file(self, name: str, path: Path) -> None:
        self.put(name, Path(path).read_bytes())

    def _holds(self, name: str, data: bytes) -> bool:
        """Whether ``name`` holds exactly ``data`` (a retried put whose first attempt landed)."""
        try:
            return self.size(name) == len(data) and self.get(name) == bytes(data)
        except ObjectMissingError:
            return False

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        if length is None and offset:
            length = max(0, self._existing_size(name) - offset)
        if length == 0:
            self._existing_size(name)
            return b""
        try:
            if length is None:
                data = bytes(obstore.get(self._s3, key).bytes())
            else:
                data = bytes(obstore.get_range(self._s3, key, start=offset, length=length))
        except Exception as exc:
            raise self._error(exc, "read", name) from None
        if length is not None and len(data) != length:
            raise IntegrityError(f"object {name} is truncated: wanted {length} bytes at {offset}, got {len(data)}")
        return data

    def _existing_size(self, name: str) -> int:
        size = self.size(name)
        if size is None:
            raise self._error(FileNotFoundError(), "read", name)
        return size

    def size(self, name: str) -> int | None:
        try:
            return obstore.head(self._s3, self._key(name))["size"]
        except Exception as exc:
            err = self._error(exc, "stat", name)
            if isinstance(err, ObjectMissingError):
                return None
            raise err from None

    def list(self, prefix: str = "") -> dict[str, int]:
        return {name: meta["size"] for name, meta in self._listing(prefix).items()}

    def modified(self, prefix: str = "") -> dict[str, float]:
        return {name: meta["last_modified"].timestamp() for name, meta in self._listing(prefix).items()}

    def _listing(self, prefix: str) -> dict[str, dict]:
        """Name -> obstore's metadata of the objects whose name starts with ``prefix``, by name."""
        out = {}
        try:
            # obstore lists by whole path segments: list the prefix's folder, match the rest here.
            folder = (self.prefix + prefix.rpartition("/")[0]).rstrip("/")
            for batch in obstore.list(self._s3, folder or None):
                for meta in batch:
                    name = meta["path"][len(self.prefix):]
                    if name.startswith(prefix) and not name.startswith(PROBE_PREFIX):
                        out[name] = meta
        except Exception as exc:
            raise self._error(exc, "list", prefix or "(all)") from None
        return dict(sorted(out.items()))

    def delete(self, name: str) -> None:
        try:
            obstore.delete(self._s3, self._key(name))
        except Exception as exc:
            err = self._error(exc, "delete", name)
            if not isinstance(err, ObjectMissingError):
                raise err from None

    def close(self) -> None:
        """Nothing to release: obstore's connection pool goes with the store object."""

    # -- the server's semantics ------------------------------------------------------------
    def probe_create_only(self) -> None:
        """Put a probe object twice, create-only: the second put must be refused. A server that
        overwrites silently, or answers that it does not implement the condition (Swift: 501),
        cannot give many writers immutable objects: ``CreateOnlyUnsupportedError`` says so."""
        name = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        refuse = (f"{self} does not honour create-only PUTs (If-None-Match: *); sessionfs refuses this "
                  "server, because writers could silently overwrite each other's objects")
        try:
            for attempt, data in enumerate((b"first", b"second")):
                try:
                    obstore.put(self._s3, self._key(name), data, mode="create", use_multipart=False)
                except Exception as exc:
                    err = self._error(exc, "probe", name)
                    if attempt == 1 and isinstance(err, ObjectExistsError):
                        return
                    if getattr(err, "errno", None) == errno.EOPNOTSUPP:
                        raise CreateOnlyUnsupportedError(f"{refuse} (it answered: not implemented)") from None
                    raise err from None
            raise CreateOnlyUnsupportedError(f"{refuse} (a second create-only PUT replaced the first)")
        finally:
            with contextlib.suppress(OSError):
                self.delete(name)
