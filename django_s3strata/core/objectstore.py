"""The S3 object store on boto3: clients, streaming upload and download, verified copies, URLs.

Everything here is synchronous and thread-safe; ``FileManager`` runs it on its own
thread pool for the async API. boto3 and botocore errors are translated into
``S3StrataError`` subclasses in ``translate_errors`` and nowhere else.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, NoReturn, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .config import MAX_PRESIGN_EXPIRY, ResolvedTier, S3StrataConfig
from .contenttypes import content_disposition, guess_content_type, write_disposition
from .exceptions import (
    AccessDeniedError,
    BucketNotFoundError,
    FileTooLargeError,
    InvalidOptionError,
    ObjectNotFoundError,
    S3StrataError,
    StorageError,
    VerificationError,
)
from .layout import Layout
from .signing import PresignSigner
from .types import ObjectInfo, S3Object, StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "DataSource",
    "ObjectStore",
    "S3ObjectReader",
    "UnfinishedUpload",
    "UploadedPart",
    "content_disposition",
    "guess_content_type",
    "translate_errors",
]

logger = logging.getLogger(__name__)

#: What ``upload`` accepts: bytes, a binary file-like object, or a filesystem path.
DataSource = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | os.PathLike[str]

#: Above this size a server-side copy goes part by part (UploadPartCopy), the parts in parallel;
#: CopyObject could copy up to 5 GiB, but one request copies much slower than parallel parts.
PART_COPY_THRESHOLD = 64 * 1024**2
MAX_PARTS = 10_000

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "500",
    "502",
    "503",
    "504",
}


def _client_error_code(exc: BaseException) -> ClientError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _raise_translated(exc: BaseException, operation: str, tier: ResolvedTier, key: str | None) -> NoReturn:
    where: dict[str, Any] = {"operation": operation, "tier": tier.tier.value, "bucket": tier.bucket, "key": key}
    client_error = _client_error_code(exc)
    if client_error is not None:
        err = client_error.response.get("Error", {})
        code = str(err.get("Code") or client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        text = str(err.get("Message") or code or client_error)
        # A HEAD's 404 has no body, so HeadBucket's "no such bucket" arrives as a bare 404.
        if code in _NO_BUCKET or (operation == "HeadBucket" and code in _NOT_FOUND):
            raise BucketNotFoundError(
                f"the bucket {tier.bucket!r} does not exist at {tier.endpoint_url}: create it, or fix the "
                f"{tier.tier.value} bucket setting.",
                code=code,
                **where,
            ) from exc
        if code in _NOT_FOUND:
            raise ObjectNotFoundError("no such object.", code=code, **where) from exc
        if code in _DENIED:
            raise AccessDeniedError(
                f"{text} Check the {tier.tier.value} tier's access_key and secret_key for {tier.endpoint_url}, "
                "and that its policy allows this request.",
                code=code,
                **where,
            ) from exc
        status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        transient = code in _TRANSIENT or int(status) >= 500
        raise StorageError(text, code=code, transient=transient, **where) from exc
    if isinstance(exc, BotoConnectionError):
        raise StorageError(
            f"{exc}: check that it is running and reachable, and the {tier.tier.value} tier's endpoint, port and "
            "use_ssl settings.",
            transient=True,
            **where,
        ) from exc
    if isinstance(exc, BotoCoreError):
        raise StorageError(f"{exc} (endpoint {tier.endpoint_url}).", transient=True, **where) from exc
    raise StorageError(f"{type(exc).__name__}: {exc}", transient=isinstance(exc, OSError), **where) from exc


@contextmanager
def translate_errors(operation: str, tier: ResolvedTier, key: str | None = None) -> Iterator[None]:
    """Translate boto3/botocore/s3transfer errors raised inside into StorageError and its subclasses."""
    try:
        yield
    except S3StrataError:
        raise
    except (ClientError, BotoCoreError, OSError) as exc:
        _raise_translated(exc, operation, tier, key)
    except Exception as exc:  # s3transfer and boto3 wrap ClientError in their own types
        if _client_error_code(exc) is None and exc.__class__.__module__.split(".")[0] not in (
            "boto3",
            "s3transfer",
            "botocore",
            "urllib3",
        ):
            raise
        _raise_translated(exc, operation, tier, key)


def _etag(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def _plain_md5(etag: str | None) -> bool:
    """Return True when an ETag is the MD5 of the content (not multipart, not encrypted with KMS)."""
    return etag is not None and len(etag) == 32 and "-" not in etag


class _LimitedReader(io.RawIOBase):
    """Pass reads through, raising FileTooLargeError past ``limit`` bytes, hashing with MD5 if asked."""

    def __init__(self, source: IO[bytes] | Any, limit: float, hash_md5: bool = False) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self.count = 0
        self.md5 = hashlib.md5(usedforsecurity=False) if hash_md5 else None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._source.read(size if size is not None and size >= 0 else -1)
        self.count += len(data)
        if self.count > self._limit:
            raise FileTooLargeError(None, self._limit)
        if self.md5 is not None:
            self.md5.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3ObjectReader(io.RawIOBase):
    """A seekable, readable view of one object that fetches ranges on demand.

    Sequential reads stream one ranged GET; a seek closes it and the next read opens
    another at the new position. Reads are pinned to the ETag seen at open, so an
    object replaced mid-read fails loudly instead of mixing two versions.
    """

    def __init__(self, store: ObjectStore, tier: StorageTier, key: str, info: ObjectInfo) -> None:
        super().__init__()
        self._store = store
        self._tier = tier
        self.name = key
        self.info = info
        self.size = info.size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self.size or len(buffer) == 0:
            return 0
        resolved = self._store.tier(self._tier)
        with translate_errors("GetObject", resolved, self.name):
            if self._body is None:
                params: dict[str, Any] = {"Bucket": resolved.bucket, "Key": self.name, "Range": f"bytes={self._pos}-"}
                if self.info.etag:
                    params["IfMatch"] = f'"{self.info.etag}"'
                self._body = self._store.client(self._tier).get_object(**params)["Body"]
            data = self._body.read(min(len(buffer), self.size - self._pos))
        if not data:
            raise StorageError(
                f"the object ended at byte {self._pos} of {self.size}.",
                operation="GetObject",
                tier=self._tier.value,
                bucket=resolved.bucket,
                key=self.name,
                transient=True,
            )
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class ObjectStore:
    """Both tiers' buckets behind one boto3 client per tier (shared when the tiers share a location)."""

    def __init__(self, config: S3StrataConfig, layout: Layout | None = None) -> None:
        self.config = config
        self.advanced = config.advanced
        # Which bucket is which tier and which prefix is which visibility: plain data, shared with callers.
        self.layout = layout if layout is not None else Layout(config)
        self._tiers = self.layout.tiers
        self._lock = threading.Lock()
        self._pid = -1
        self._clients: dict[StorageTier, S3Client] = {}
        self._signers: dict[StorageTier, PresignSigner] = {}

    def __getstate__(self) -> dict[str, Any]:
        # boto3 clients hold sockets and locks: rebuild them after unpickling.
        state = self.__dict__.copy()
        state["_clients"] = {}
        state["_pid"] = -1
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- clients -------------------------------------------------------------------

    def tier(self, tier: StorageTier) -> ResolvedTier:
        """Return the resolved settings of ``tier``."""
        return self._tiers[tier]

    def same_location(self) -> bool:
        """Return True when both tiers live on one endpoint with one set of credentials."""
        return self.layout.same_location()

    def client(self, tier: StorageTier) -> S3Client:
        """Return the boto3 client of ``tier``, built once per process (and again after a fork)."""
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    self._clients = self._build_clients()
                    self._pid = pid
        return self._clients[tier]

    def _build_clients(self) -> dict[StorageTier, S3Client]:
        adv = self.advanced
        clients: dict[StorageTier, S3Client] = {}
        for tier, resolved in self._tiers.items():
            other = clients.get(StorageTier.HOT)
            if (
                tier is StorageTier.COLD
                and other is not None
                and resolved.same_location(self._tiers[StorageTier.HOT])
                and (resolved.addressing_style == self._tiers[StorageTier.HOT].addressing_style)
            ):
                clients[tier] = other
                continue
            botocore_config = Config(
                region_name=resolved.region or "us-east-1",
                signature_version="s3v4",
                s3={"addressing_style": resolved.addressing_style},
                retries={"mode": "standard", "total_max_attempts": adv.max_attempts},
                max_pool_connections=adv.max_concurrency * 2,
                connect_timeout=adv.connect_timeout,
                read_timeout=adv.read_timeout,
                request_checksum_calculation=adv.request_checksum_calculation,
                response_checksum_validation=adv.response_checksum_validation,
                tcp_keepalive=True,
            )
            clients[tier] = _new_client(
                endpoint_url=resolved.endpoint_url,
                aws_access_key_id=resolved.access_key,
                aws_secret_access_key=resolved.secret_key,
                config=botocore_config,
            )
        return clients

    def _transfer_config(
        self, *, concurrency: int | None = None, chunksize: int | None = None, threshold: int | None = None
    ) -> TransferConfig:
        adv = self.advanced
        cfg = TransferConfig(
            multipart_threshold=threshold or adv.multipart_threshold,
            multipart_chunksize=chunksize or adv.multipart_chunksize,
            max_concurrency=concurrency or min(adv.max_concurrency, 8),
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # Bound the bytes held in memory by a streamed upload: parts read ahead of the network.
        cfg.max_in_memory_upload_chunks = max(2, cfg.max_request_concurrency)
        return cfg

    # -- URLs: pure CPU, no network ------------------------------------------------

    def public_url(self, tier: StorageTier, key: str) -> str:
        """Return the direct URL of ``key``: path-style on the endpoint, or under ``public_base_url``."""
        return self.layout.public_url(tier, key)

    def presigned_url(self, tier: StorageTier, key: str, expires_in: int, disposition: str | None = None) -> str:
        """Return a presigned GET URL for ``key`` valid for ``expires_in`` seconds."""
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_PRESIGN_EXPIRY:
            raise InvalidOptionError(
                f"expires_in={expires_in!r} is invalid: give whole seconds from 1 to {MAX_PRESIGN_EXPIRY} (7 days, S3's limit)."
            )
        # Signed here with a cached signing key: no request object, no network; about 12x faster than boto3.
        extra = {"response-content-disposition": disposition} if disposition else None
        return self._signer(tier).presign_get(key, expires_in, extra)

    def _signer(self, tier: StorageTier) -> PresignSigner:
        signer = self._signers.get(tier)
        if signer is None:
            r = self._tiers[tier]
            signer = PresignSigner(r.endpoint_url, r.bucket, r.access_key, r.secret_key, r.region or "us-east-1", r.virtual_host)
            self._signers[tier] = signer
        return signer

    # -- public access -------------------------------------------------------------

    def public_read_policy(self, tier: StorageTier) -> dict[str, Any]:
        """Return a bucket policy granting anonymous GetObject on the tier's public prefix only."""
        r = self._tiers[tier]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "S3StrataPublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{r.bucket}/{r.public_prefix}/*",
                }
            ],
        }

    def apply_public_read_policy(self, tier: StorageTier) -> None:
        """Set the tier bucket's policy to ``public_read_policy`` (replacing any policy it had)."""
        r = self._tiers[tier]
        with translate_errors("PutBucketPolicy", r):
            self.client(tier).put_bucket_policy(Bucket=r.bucket, Policy=json.dumps(self.public_read_policy(tier)))

    # -- reads ---------------------------------------------------------------------

    def head(self, tier: StorageTier, key: str) -> ObjectInfo | None:
        """Return what a HEAD tells about ``key``, or None when there is no such object."""
        r = self._tiers[tier]
        try:
            with translate_errors("HeadObject", r, key):
                resp = self.client(tier).head_object(Bucket=r.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=_etag(resp.get("ETag")),
            last_modified=resp.get("LastModified"),
            content_type=resp.get("ContentType"),
            storage_class=resp.get("StorageClass"),
        )

    def require_bucket(self, tier: StorageTier) -> None:
        """Raise BucketNotFoundError, AccessDeniedError or StorageError unless the tier's bucket answers (one HeadBucket)."""
        r = self._tiers[tier]
        with translate_errors("HeadBucket", r):
            self.client(tier).head_bucket(Bucket=r.bucket)

    def require(self, tier: StorageTier, key: str) -> ObjectInfo:
        """Return the HEAD of ``key`` or raise ObjectNotFoundError."""
        info = self.head(tier, key)
        if info is None:
            r = self._tiers[tier]
            raise ObjectNotFoundError(
                "no such object.", operation="HeadObject", tier=tier.value, bucket=r.bucket, key=key, code="404"
            )
        return info

    def open(self, tier: StorageTier, key: str, buffer_size: int = 1024 * 1024) -> io.BufferedReader:
        """Return a buffered, seekable binary stream over ``key`` that reads ranges on demand."""
        raw = S3ObjectReader(self, tier, key, self.require(tier, key))
        return io.BufferedReader(raw, buffer_size=buffer_size)

    def download(self, tier: StorageTier, key: str, fileobj: IO[bytes] | Any) -> None:
        """Stream ``key`` into the writable binary ``fileobj`` in bounded memory."""
        r = self._tiers[tier]
        with translate_errors("GetObject", r, key):
            self.client(tier).download_fileobj(r.bucket, key, fileobj, Config=self._transfer_config())

    def iter_pages(
        self, tier: StorageTier, prefix: str | None = None, page_size: int = 1000, *, read_ahead: bool = False
    ) -> Iterator[list[S3Object]]:
        """Yield the bucket listing of ``tier`` one page at a time.

        With ``read_ahead``, a thread fetches the next page while the caller works on this one
        (the orphan sweep's database check overlaps the listing); at most two pages are held.
        """
        pages = self._pages(tier, prefix, page_size)
        return _read_ahead(pages) if read_ahead else pages

    def _pages(self, tier: StorageTier, prefix: str | None, page_size: int) -> Iterator[list[S3Object]]:
        r = self._tiers[tier]
        params: dict[str, Any] = {"Bucket": r.bucket, "PaginationConfig": {"PageSize": page_size}}
        if prefix:
            params["Prefix"] = prefix
        with translate_errors("ListObjectsV2", r, prefix):
            for page in self.client(tier).get_paginator("list_objects_v2").paginate(**params):
                yield [
                    S3Object(
                        key=item["Key"],
                        last_modified=item.get("LastModified"),
                        size=item.get("Size"),
                        etag=_etag(item.get("ETag")),
                        storage_class=item.get("StorageClass"),
                    )
                    for item in page.get("Contents", [])
                ]

    def list_dir(self, tier: StorageTier, prefix: str) -> tuple[list[str], list[str]]:
        """Return the sub-directory names and file names directly under ``prefix`` (ending in '/')."""
        r = self._tiers[tier]
        dirs: list[str] = []
        files: list[str] = []
        with translate_errors("ListObjectsV2", r, prefix):
            pages = self.client(tier).get_paginator("list_objects_v2").paginate(Bucket=r.bucket, Prefix=prefix, Delimiter="/")
            for page in pages:
                dirs.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
                files.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
        return dirs, files

    # -- writes --------------------------------------------------------------------

    def _write_args(self, r: ResolvedTier, content_type: str | None, disposition: str | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
            # Active content (HTML, SVG, XML, JavaScript) is never written to be shown inline unless
            # the settings say so: a copy between endpoints keeps its attachment disposition too.
            policy = "attachment" if self.advanced.active_content == "refuse" else self.advanced.active_content
            disposition = disposition or write_disposition(content_type, None, policy)
        if disposition:
            extra["ContentDisposition"] = disposition
        if r.storage_class:
            extra["StorageClass"] = r.storage_class
        return extra

    def put(
        self,
        tier: StorageTier,
        key: str,
        data: DataSource,
        *,
        content_type: str | None = None,
        content_disposition: str | None = None,
        max_size: float = math.inf,
    ) -> ObjectInfo:
        """Store ``data`` at ``key``, streaming (multipart above the threshold); return what S3 answered.

        ``content_disposition`` is stored as the object's ``Content-Disposition``; an active
        ``content_type`` without one gets ``attachment`` unless ``active_content`` is "inline".

        The ETag is known when the object went in one PutObject (s3transfer does not report a
        multipart upload's); the size always.

        ``max_size`` is checked before any byte is sent when the size is known, and while
        reading otherwise (an unfinished multipart upload is then aborted).
        """
        r = self._tiers[tier]
        client = self.client(tier)
        extra = self._write_args(r, content_type, content_disposition)
        threshold = self.advanced.multipart_threshold

        def stored(size: int, etag: Any) -> ObjectInfo:
            return ObjectInfo(key, size, _etag(etag), None, extra.get("ContentType"), r.storage_class)

        with translate_errors("PutObject", r, key):
            if isinstance(data, bytes | bytearray | memoryview):
                size = len(data)
                if size > max_size:
                    raise FileTooLargeError(size, max_size)
                if size <= threshold:
                    resp = client.put_object(Bucket=r.bucket, Key=key, Body=bytes(data), **extra)
                    return stored(size, resp.get("ETag"))
                client.upload_fileobj(io.BytesIO(data), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
                return stored(size, None)
            if isinstance(cast(object, data), str):
                raise InvalidOptionError("upload() got a str: pass bytes for content, or a pathlib.Path for a file on disk.")
            if isinstance(data, os.PathLike):
                path = os.fspath(data)
                size = os.stat(path).st_size
                if size > max_size:
                    raise FileTooLargeError(size, max_size)
                if size <= threshold:
                    with open(path, "rb") as fh:
                        resp = client.put_object(Bucket=r.bucket, Key=key, Body=fh, **extra)
                    return stored(size, resp.get("ETag"))
                # Parts are read from the file as they are sent: memory stays small at boto3's 10 in flight.
                cfg = self._transfer_config(concurrency=min(self.advanced.max_concurrency, 10))
                client.upload_file(path, r.bucket, key, ExtraArgs=extra, Config=cfg)
                return stored(size, None)
            if not hasattr(data, "read"):
                raise InvalidOptionError(
                    f"upload() cannot read a {type(data).__name__}: pass bytes, a binary file object or a pathlib.Path."
                )
            remaining = _remaining(data)
            if remaining is not None and remaining > max_size:
                raise FileTooLargeError(remaining, max_size)
            if remaining is not None and remaining <= threshold:
                body: object = data.read()
                if not isinstance(body, bytes):
                    raise InvalidOptionError("upload() got a text stream: open the file in binary mode ('rb').")
                resp = client.put_object(Bucket=r.bucket, Key=key, Body=body, **extra)
                return stored(len(body), resp.get("ETag"))
            reader = _LimitedReader(data, max_size)
            client.upload_fileobj(cast("IO[bytes]", reader), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
            return stored(reader.count, None)

    def delete(self, tier: StorageTier, key: str) -> None:
        """Delete ``key``; deleting a missing object is not an error (S3's semantics)."""
        r = self._tiers[tier]
        with translate_errors("DeleteObject", r, key):
            self.client(tier).delete_object(Bucket=r.bucket, Key=key)

    def delete_many(self, tier: StorageTier, keys: list[str]) -> None:
        """Delete ``keys`` with one DeleteObjects request per 1,000; raise StorageError naming any key S3 kept."""
        r = self._tiers[tier]
        failed: list[Any] = []
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            with translate_errors("DeleteObjects", r, chunk[0]):
                resp = self.client(tier).delete_objects(
                    Bucket=r.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
            failed.extend(resp.get("Errors", []))
        if failed:
            first = failed[0]
            raise StorageError(
                f"{len(failed)} of {len(keys)} objects were not deleted; first: {first.get('Key')!r} "
                f"({first.get('Code')}: {first.get('Message')}).",
                operation="DeleteObjects",
                tier=tier.value,
                bucket=r.bucket,
                key=str(first.get("Key")),
                code=str(first.get("Code")),
                transient=True,
            )

    def copy(
        self, src: StorageTier, src_key: str, dst: StorageTier, dst_key: str, *, source: ObjectInfo | None = None
    ) -> ObjectInfo:
        """Copy an object and verify the copy; return the copy's HEAD.

        Same location: server-side CopyObject (UploadPartCopy in parallel parts above 64 MiB).
        Different endpoints: a streamed GET into a multipart upload, in bounded memory.
        On failure the source is untouched; the caller decides whether the destination
        (which another writer may have committed meanwhile) is a partial copy to remove.
        """
        if (src, src_key) == (dst, dst_key):
            raise InvalidOptionError("copy source and destination are the same object.")
        source = source or self.require(src, src_key)
        s, d = self._tiers[src], self._tiers[dst]
        streamed_md5: str | None = None
        copy: ObjectInfo | None = None
        with translate_errors("CopyObject", d, dst_key):
            if s.same_location(d):
                copied_etag = self._server_side_copy(s, src_key, d, dst_key, source)
                # CopyObject was pinned to the source's ETag (CopySourceIfMatch) and succeeded: S3 copied
                # exactly the version whose size we know. Where the ETag is an MD5, it must also match.
                if copied_etag is not None and source.etag and (not _plain_md5(source.etag) or copied_etag == source.etag):
                    copy = ObjectInfo(dst_key, source.size, copied_etag, None, source.content_type, d.storage_class)
                elif copied_etag is None and source.etag:
                    # In parts: every UploadPartCopy was pinned to the source's ETag, the parts' ranges
                    # cover exactly its size, and CompleteMultipartUpload succeeded, so the copy holds
                    # exactly those bytes (its own ETag, of parts, could not be compared anyway).
                    copy = ObjectInfo(dst_key, source.size, None, None, source.content_type, d.storage_class)
            else:
                streamed_md5 = self._streamed_copy(src, s, src_key, dst, d, dst_key, source)
        if copy is None:
            copy = self.head(dst, dst_key)
        self._verify(source, copy, streamed_md5, d, dst_key)
        assert copy is not None
        return copy

    def _server_side_copy(self, s: ResolvedTier, src_key: str, d: ResolvedTier, dst_key: str, source: ObjectInfo) -> str | None:
        """Copy on the server; return the copy's ETag when S3 reports it (single CopyObject)."""
        client = self.client(d.tier)
        copy_source = {"Bucket": s.bucket, "Key": src_key}
        extra: dict[str, Any] = {}
        if d.storage_class:
            extra["StorageClass"] = d.storage_class
        if source.etag:
            # Copy exactly the version that was verified, not one written since (every part, if in parts).
            extra["CopySourceIfMatch"] = f'"{source.etag}"'
        if source.size <= PART_COPY_THRESHOLD:
            resp = client.copy_object(Bucket=d.bucket, Key=dst_key, CopySource=copy_source, MetadataDirective="COPY", **extra)  # type: ignore[arg-type]
            return _etag(resp.get("CopyObjectResult", {}).get("ETag"))
        # Large objects: parts copied in parallel on the server (UploadPartCopy), much faster than one
        # CopyObject, and the only way above 5 GiB. s3transfer carries the metadata over from its own
        # HEAD; the content type is also given, for s3transfer releases that do not.
        part = max(self.advanced.multipart_chunksize, math.ceil(source.size / MAX_PARTS))
        # Parts copied on the server cost the client no memory: as many in flight as connections allow.
        cfg = self._transfer_config(chunksize=part, threshold=PART_COPY_THRESHOLD, concurrency=self.advanced.max_concurrency)
        if source.content_type:
            extra["ContentType"] = source.content_type
        client.copy(copy_source, d.bucket, dst_key, ExtraArgs=extra, Config=cfg)  # type: ignore[arg-type]
        return None

    def _streamed_copy(
        self, src: StorageTier, s: ResolvedTier, src_key: str, dst: StorageTier, d: ResolvedTier, dst_key: str, source: ObjectInfo
    ) -> str:
        with translate_errors("GetObject", s, src_key):
            params: dict[str, Any] = {"Bucket": s.bucket, "Key": src_key}
            if source.etag:
                params["IfMatch"] = f'"{source.etag}"'
            body = self.client(src).get_object(**params)["Body"]
        try:
            reader = _LimitedReader(body, math.inf, hash_md5=True)
            extra = self._write_args(d, source.content_type)
            # Few parts in flight: memory stays near concurrency x chunksize whatever the object size.
            cfg = self._transfer_config(concurrency=3)
            self.client(dst).upload_fileobj(cast("IO[bytes]", reader), d.bucket, dst_key, ExtraArgs=extra, Config=cfg)
        finally:
            body.close()
        assert reader.md5 is not None
        if reader.count != source.size:
            raise VerificationError(
                f"read {reader.count} bytes from the source, expected {source.size}.",
                operation="CopyObject",
                tier=d.tier.value,
                bucket=d.bucket,
                key=dst_key,
            )
        return reader.md5.hexdigest()

    def _verify(
        self, source: ObjectInfo, copy: ObjectInfo | None, streamed_md5: str | None, d: ResolvedTier, dst_key: str
    ) -> None:
        def fail(why: str) -> NoReturn:
            raise VerificationError(why, operation="VerifyCopy", tier=d.tier.value, bucket=d.bucket, key=dst_key)

        if copy is None:
            fail("the copy is missing after the copy request succeeded.")
        if copy.size != source.size:
            fail(f"the copy has {copy.size} bytes, the source {source.size}.")
        if streamed_md5 is not None and _plain_md5(source.etag) and streamed_md5 != source.etag:
            fail(f"the bytes read have MD5 {streamed_md5}, the source's ETag is {source.etag}.")
        known = streamed_md5 if streamed_md5 is not None else (source.etag if _plain_md5(source.etag) else None)
        if known is not None and _plain_md5(copy.etag) and copy.etag != known:
            fail(f"the copy's ETag {copy.etag} differs from the source's MD5 {known}.")

    # -- browser uploads: POST policies, multipart uploads, CORS ---------------------

    def presigned_post(
        self, tier: StorageTier, key: str, fields: dict[str, str], conditions: list[Any], expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """Return the URL and form fields of a POST to ``key`` signed for ``fields`` and ``conditions`` (no network)."""
        resolved = self._tiers[tier]
        with translate_errors("PresignPost", resolved, key):
            post = self.client(tier).generate_presigned_post(
                resolved.bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
            )
        return post["url"], {str(name): str(value) for name, value in post["fields"].items()}

    def create_multipart_upload(
        self, tier: StorageTier, key: str, *, content_type: str, content_disposition: str | None = None
    ) -> str:
        """Start a multipart upload at ``key`` (the tier's storage class) and return its upload ID."""
        resolved = self._tiers[tier]
        extra: dict[str, Any] = {"ContentType": content_type}
        if content_disposition:
            extra["ContentDisposition"] = content_disposition
        if resolved.storage_class:
            extra["StorageClass"] = resolved.storage_class
        with translate_errors("CreateMultipartUpload", resolved, key):
            return self.client(tier).create_multipart_upload(Bucket=resolved.bucket, Key=key, **extra)["UploadId"]

    def presigned_part_urls(
        self, tier: StorageTier, key: str, upload_id: str, parts: Iterable[tuple[int, int]], expires_in: int
    ) -> list[str]:
        """Return a presigned UploadPart URL for each (part number, length) of ``parts``, each bound to its length."""
        resolved = self._tiers[tier]
        client = self.client(tier)
        with translate_errors("PresignUploadPart", resolved, key):
            return [
                client.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": resolved.bucket,
                        "Key": key,
                        "UploadId": upload_id,
                        "PartNumber": number,
                        "ContentLength": length,
                    },
                    ExpiresIn=expires_in,
                )
                for number, length in parts
            ]

    def uploaded_parts(self, tier: StorageTier, key: str, upload_id: str) -> list[UploadedPart]:
        """Return the parts S3 holds of the multipart upload ``upload_id``, in S3's order."""
        resolved = self._tiers[tier]
        parts: list[UploadedPart] = []
        with translate_errors("ListParts", resolved, key):
            pages = self.client(tier).get_paginator("list_parts").paginate(Bucket=resolved.bucket, Key=key, UploadId=upload_id)
            for page in pages:
                parts.extend(UploadedPart(part["PartNumber"], part["Size"], part["ETag"]) for part in page.get("Parts", []))
        return parts

    def complete_multipart_upload(self, tier: StorageTier, key: str, upload_id: str, parts: Iterable[UploadedPart]) -> None:
        """Complete the multipart upload ``upload_id`` from ``parts`` (sorted by number here, as S3 requires)."""
        resolved = self._tiers[tier]
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": part.number, "ETag": part.etag} for part in sorted(parts, key=lambda part: part.number)
        ]
        with translate_errors("CompleteMultipartUpload", resolved, key):
            self.client(tier).complete_multipart_upload(
                Bucket=resolved.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed}
            )

    def abort_multipart_upload(self, tier: StorageTier, key: str, upload_id: str) -> None:
        """Abort the multipart upload ``upload_id`` and free its parts (StorageError code "NoSuchUpload" when gone)."""
        resolved = self._tiers[tier]
        with translate_errors("AbortMultipartUpload", resolved, key):
            self.client(tier).abort_multipart_upload(Bucket=resolved.bucket, Key=key, UploadId=upload_id)

    def iter_multipart_uploads(self, tier: StorageTier, prefix: str | None = None) -> Iterator[UnfinishedUpload]:
        """Yield the tier's multipart uploads that were neither completed nor aborted (under ``prefix``), page by page."""
        resolved = self._tiers[tier]
        params: dict[str, Any] = {"Bucket": resolved.bucket}
        if prefix:
            params["Prefix"] = prefix
        with translate_errors("ListMultipartUploads", resolved):
            for page in self.client(tier).get_paginator("list_multipart_uploads").paginate(**params):
                for upload in page.get("Uploads", []):
                    yield UnfinishedUpload(upload["Key"], upload["UploadId"], upload.get("Initiated"))

    def head_with_disposition(self, tier: StorageTier, key: str) -> tuple[ObjectInfo, str | None] | None:
        """Return the HEAD of ``key`` and its Content-Disposition, or None when there is no such object."""
        resolved = self._tiers[tier]
        try:
            with translate_errors("HeadObject", resolved, key):
                resp = self.client(tier).head_object(Bucket=resolved.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        info = ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=_etag(resp.get("ETag")),
            last_modified=resp.get("LastModified"),
            content_type=resp.get("ContentType"),
            storage_class=resp.get("StorageClass"),
        )
        return info, resp.get("ContentDisposition")

    def cors_rules(self, tier: StorageTier) -> list[dict[str, Any]]:
        """Return the CORS rules of the tier's bucket (none when it has no CORS configuration)."""
        resolved = self._tiers[tier]
        with translate_errors("GetBucketCors", resolved):
            try:
                return [dict(rule) for rule in self.client(tier).get_bucket_cors(Bucket=resolved.bucket).get("CORSRules", [])]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                    raise
                return []

    def put_cors_rules(self, tier: StorageTier, rules: list[dict[str, Any]]) -> None:
        """Set the CORS rules of the tier's bucket to ``rules`` (replacing all it had)."""
        resolved = self._tiers[tier]
        with translate_errors("PutBucketCors", resolved):
            self.client(tier).put_bucket_cors(Bucket=resolved.bucket, CORSConfiguration={"CORSRules": rules})  # type: ignore[typeddict-item]


_END = object()


def _read_ahead(pages: Iterator[list[S3Object]]) -> Iterator[list[S3Object]]:
    """Yield ``pages`` while a thread fetches the next one; errors arrive in order; closing stops it."""
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for page in pages:
                if not offer((page, None)):
                    return
        except BaseException as exc:
            offer((_END, exc))
            return
        offer((_END, None))

    threading.Thread(target=fetch, name="s3strata-list", daemon=True).start()
    try:
        while True:
            page, error = ready.get()
            if page is _END:
                if error is not None:
                    raise error
                return
            yield page
    finally:
        stop.set()


_session_lock = threading.Lock()
_session: tuple[int, boto3.session.Session] | None = None


def _new_client(**kwargs: Any) -> S3Client:
    """Return a new S3 client from this process's one boto3 session.

    A session loads botocore's service model once; a new session per client costs about
    0.1 s each. Sessions are not thread-safe, so clients are made under a lock.
    """
    global _session
    with _session_lock:
        if _session is None or _session[0] != os.getpid():
            _session = (os.getpid(), boto3.session.Session())
        return _session[1].client("s3", **kwargs)


def _remaining(stream: Any) -> int | None:
    """Return the bytes left in a seekable stream, or None when it cannot tell."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return int(end - here)
    except (AttributeError, OSError, ValueError):
        return None


class UploadedPart(NamedTuple):
    """One part that S3 holds of an unfinished multipart upload."""

    number: int
    size: int
    etag: str


class UnfinishedUpload(NamedTuple):
    """A multipart upload that S3 holds, started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None
