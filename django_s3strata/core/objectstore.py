"""The S3 object store on boto3: every S3 request, streaming upload and download, verified copies, URLs.

Everything here is synchronous and thread-safe; ``FileManager`` runs it on its own thread pool
for the async API. boto3 and botocore errors are translated into ``S3StrataError`` subclasses by
``s3errors.translate_errors`` and nowhere else. Clients are built in ``clients.py``, streams in
``streams.py``, and the requests of browser uploads and bucket settings live in the base class
``bucket_requests.BucketRequests``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from boto3.s3.transfer import TransferConfig

from .bucket_requests import BucketRequests, UnfinishedUpload, UploadedPart
from .clients import build_clients, transfer_config
from .config import MAX_PRESIGN_EXPIRY, ResolvedTier, S3StrataConfig
from .contenttypes import content_disposition, guess_content_type, write_disposition
from .exceptions import (
    FileTooLargeError,
    InvalidOptionError,
    ObjectNotFoundError,
    StorageError,
    VerificationError,
)
from .layout import Layout
from .s3errors import etag_of, plain_md5, translate_errors
from .signing import PresignSigner
from .streams import LimitedReader, S3ObjectReader, remaining_bytes
from .streams import read_ahead as read_pages_ahead
from .types import ObjectInfo, S3Object, StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

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


class ObjectStore(BucketRequests):
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
                    self._clients = build_clients(self._tiers, self.advanced)
                    self._pid = pid
        return self._clients[tier]

    def _transfer_config(
        self, *, concurrency: int | None = None, chunksize: int | None = None, threshold: int | None = None
    ) -> TransferConfig:
        return transfer_config(self.advanced, concurrency=concurrency, chunksize=chunksize, threshold=threshold)

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
        found = self.head_with_disposition(tier, key)
        return None if found is None else found[0]

    def head_with_disposition(self, tier: StorageTier, key: str) -> tuple[ObjectInfo, str | None] | None:
        """Return the HEAD of ``key`` and its Content-Disposition, or None when there is no such object."""
        r = self._tiers[tier]
        try:
            with translate_errors("HeadObject", r, key):
                resp = self.client(tier).head_object(Bucket=r.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        info = ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=etag_of(resp.get("ETag")),
            last_modified=resp.get("LastModified"),
            content_type=resp.get("ContentType"),
            storage_class=resp.get("StorageClass"),
        )
        return info, resp.get("ContentDisposition")

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
        raw = S3ObjectReader(self.client(tier), self._tiers[tier], key, self.require(tier, key))
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
        return read_pages_ahead(pages) if read_ahead else pages

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
                        etag=etag_of(item.get("ETag")),
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
        extra = self._write_args(r, content_type, content_disposition)
        with translate_errors("PutObject", r, key):
            if isinstance(data, bytes | bytearray | memoryview):
                size, etag = self._put_bytes(r, key, bytes(data), extra, max_size)
            elif isinstance(cast(object, data), str):
                raise InvalidOptionError("upload() got a str: pass bytes for content, or a pathlib.Path for a file on disk.")
            elif isinstance(data, os.PathLike):
                size, etag = self._put_path(r, key, os.fspath(data), extra, max_size)
            elif hasattr(data, "read"):
                size, etag = self._put_stream(r, key, data, extra, max_size)
            else:
                raise InvalidOptionError(
                    f"upload() cannot read a {type(data).__name__}: pass bytes, a binary file object or a pathlib.Path."
                )
        return ObjectInfo(key, size, etag_of(etag), None, extra.get("ContentType"), r.storage_class)

    # Each returns (size, ETag): the ETag is known when the object went in one PutObject (s3transfer
    # does not report a multipart upload's).

    def _put_bytes(self, r: ResolvedTier, key: str, data: bytes, extra: dict[str, Any], max_size: float) -> tuple[int, Any]:
        if len(data) > max_size:
            raise FileTooLargeError(len(data), max_size)
        client = self.client(r.tier)
        if len(data) <= self.advanced.multipart_threshold:
            return len(data), client.put_object(Bucket=r.bucket, Key=key, Body=data, **extra).get("ETag")
        client.upload_fileobj(io.BytesIO(data), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
        return len(data), None

    def _put_path(self, r: ResolvedTier, key: str, path: str, extra: dict[str, Any], max_size: float) -> tuple[int, Any]:
        size = os.stat(path).st_size
        if size > max_size:
            raise FileTooLargeError(size, max_size)
        client = self.client(r.tier)
        if size <= self.advanced.multipart_threshold:
            with open(path, "rb") as fh:
                return size, client.put_object(Bucket=r.bucket, Key=key, Body=fh, **extra).get("ETag")
        # Parts are read from the file as they are sent: memory stays small at boto3's 10 in flight.
        cfg = self._transfer_config(concurrency=min(self.advanced.max_concurrency, 10))
        client.upload_file(path, r.bucket, key, ExtraArgs=extra, Config=cfg)
        return size, None

    def _put_stream(self, r: ResolvedTier, key: str, data: Any, extra: dict[str, Any], max_size: float) -> tuple[int, Any]:
        remaining = remaining_bytes(data)
        if remaining is not None and remaining > max_size:
            raise FileTooLargeError(remaining, max_size)
        client = self.client(r.tier)
        if remaining is not None and remaining <= self.advanced.multipart_threshold:
            body: object = data.read()
            if not isinstance(body, bytes):
                raise InvalidOptionError("upload() got a text stream: open the file in binary mode ('rb').")
            return len(body), client.put_object(Bucket=r.bucket, Key=key, Body=body, **extra).get("ETag")
        reader = LimitedReader(data, max_size)
        client.upload_fileobj(cast("IO[bytes]", reader), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
        return reader.count, None

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
                if copied_etag is not None and source.etag and (not plain_md5(source.etag) or copied_etag == source.etag):
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
            return etag_of(resp.get("CopyObjectResult", {}).get("ETag"))
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
            reader = LimitedReader(body, math.inf, hash_md5=True)
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
        if streamed_md5 is not None and plain_md5(source.etag) and streamed_md5 != source.etag:
            fail(f"the bytes read have MD5 {streamed_md5}, the source's ETag is {source.etag}.")
        known = streamed_md5 if streamed_md5 is not None else (source.etag if plain_md5(source.etag) else None)
        if known is not None and plain_md5(copy.etag) and copy.etag != known:
            fail(f"the copy's ETag {copy.etag} differs from the source's MD5 {known}.")
