"""The S3 object store on boto3: every S3 request, streaming upload and download, verified copies, URLs.

Everything here is synchronous and thread-safe; ``FileManager`` runs it on its own thread pool
for the async API. boto3 and botocore errors are translated into ``S3StrataError`` subclasses by
``s3errors.translate_errors`` and nowhere else. Clients are built in ``clients.py``, streams in
``streams.py``; copies live in the base class ``copies.CopyRequests``, and the requests of browser
uploads and bucket settings in the base class ``bucket_requests.BucketRequests``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from boto3.s3.transfer import TransferConfig

from .bucket_requests import BucketRequests, UnfinishedUpload, UploadedPart
from .clients import build_clients, on_aws, tier_credentials, transfer_config
from .config import MAX_PRESIGN_EXPIRY, ResolvedTier, S3StrataConfig
from .contenttypes import content_disposition, guess_content_type, header_type, is_active, write_disposition
from .copies import CopyRequests
from .exceptions import (
    CredentialsError,
    FileTooLargeError,
    InvalidOptionError,
    ObjectNotFoundError,
    StorageError,
)
from .layout import Layout
from .objectparams import parse_object_parameters
from .s3errors import etag_is_md5, etag_of, full_object_checksums, plain_md5, translate_errors
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


class ObjectStore(CopyRequests, BucketRequests):
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
        self._signers_pid = -1
        #: Tiers whose provider answered DeleteObjects with NotImplemented: they delete key by key.
        self._single_deletes: set[StorageTier] = set()
        #: Tiers where an answer showed SSE-KMS or SSE-C: their ETags are not MD5s, records' ETags prove nothing.
        self._etags_not_md5: set[StorageTier] = {t for t, r in self._tiers.items() if r.server_side_encryption == "aws:kms"}

    def __getstate__(self) -> dict[str, Any]:
        # boto3 clients hold sockets and locks: rebuild them after unpickling.
        state = self.__dict__.copy()
        state["_clients"] = {}
        state["_signers"] = {}
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

    def credential_method(self, tier: StorageTier) -> str | None:
        """Return where ``tier``'s credentials come from, as botocore names it, or None when none are found.

        "explicit" for keys in the settings; from boto3's chain e.g. "env", "shared-credentials-file",
        "sso", "assume-role-with-web-identity", "container-role" or "iam-role". Loading them may ask a
        credentials endpoint once per process; a failure raises CredentialsError.
        """
        credentials = tier_credentials(self._tiers[tier])
        return None if credentials is None else str(getattr(credentials, "method", None) or "explicit")

    def _signer(self, tier: StorageTier) -> PresignSigner:
        signer = self._signers.get(tier)
        if signer is None or self._signers_pid != os.getpid():
            # The signer reads the same credentials object as the tier's clients (a refresh serves both);
            # after a fork, the child's own sessions hold it.
            if self._signers_pid != os.getpid():
                self._signers, self._signers_pid = {}, os.getpid()
            r = self._tiers[tier]
            credentials = tier_credentials(r)
            if credentials is None:
                raise CredentialsError(
                    f"no credentials found for the {tier.value} tier: set access_key and secret_key, or give boto3's "
                    "default credential chain some (environment, profile, web identity, container or instance role).",
                    operation="presign GetObject",
                    tier=tier.value,
                    bucket=r.bucket,
                )
            signer = PresignSigner(
                r.endpoint_url, r.bucket, credentials, r.region or "us-east-1", r.virtual_host, tier=tier.value
            )
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
        params: dict[str, Any] = {"Bucket": r.bucket, "Key": key}
        if self.checksum_algorithm(tier):
            params["ChecksumMode"] = "ENABLED"  # the full-object checksum, when the object has one
        try:
            with translate_errors("HeadObject", r, key):
                resp = self.client(tier).head_object(**params)
        except ObjectNotFoundError:
            return None
        info = self._answered(tier, key, int(resp.get("ContentLength", 0)), resp, resp)
        return info, resp.get("ContentDisposition")

    def _answered(self, tier: StorageTier, key: str, size: int, answer: Any, result: Any) -> ObjectInfo:
        """Return what S3's ``answer`` (its headers; ``result``: where ETag and checksums are) tells about ``key``."""
        etag = etag_of(result.get("ETag"))
        encryption = answer.get("ServerSideEncryption")
        md5 = etag_is_md5(etag, answer)
        if plain_md5(etag) and not md5 and tier not in self._etags_not_md5:
            logger.info(
                "s3strata: the %s tier's ETags are not MD5s (%s): copies are verified by checksum or size.",
                tier.value,
                encryption or "SSE-C",
            )
            self._etags_not_md5.add(tier)
        return ObjectInfo(
            key=key,
            size=size,
            etag=etag,
            last_modified=answer.get("LastModified"),
            content_type=answer.get("ContentType"),
            storage_class=answer.get("StorageClass"),
            etag_md5=md5,
            checksums=full_object_checksums(result),
            encryption=encryption,
            parameters={name: answer[name] for name in _KEPT if answer.get(name)},
            tag_count=answer.get("TagCount"),
            restore=answer.get("Restore"),
            archive_status=answer.get("ArchiveStatus"),
        )

    def etags_are_md5(self, tier: StorageTier) -> bool:
        """Return False when the tier's ETags are known not to be content MD5s (SSE-KMS set, or seen in an answer)."""
        return tier not in self._etags_not_md5

    def checksum_algorithm(self, tier: StorageTier) -> str | None:
        """Return the checksum the tier's writes ask S3 to keep: its setting, else SHA256 where boto3 sends checksums."""
        r = self._tiers[tier]
        if r.checksum_algorithm is not None:
            return r.checksum_algorithm
        # As the client's checksum settings: on AWS by default, elsewhere only when asked for.
        when = self.advanced.request_checksum_calculation or ("when_supported" if on_aws(r) else "when_required")
        return "SHA256" if when == "when_supported" else None

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

    def restore_object(self, tier: StorageTier, key: str, days: int, retrieval: str, storage_class: str | None = None) -> bool:
        """Ask S3 to restore an archived object for ``days`` at ``retrieval`` speed; False when one is already under way.

        S3 answers 202 for a new restore, 200 when a restored copy exists (its expiry is extended) and
        409 RestoreAlreadyInProgress while one runs: that last one changes nothing and is not an error.
        Intelligent-Tiering's archive tiers (``storage_class`` INTELLIGENT_TIERING, as a HEAD said) take
        no Days: the object returns to its frequent access tier.
        """
        r = self._tiers[tier]
        request: dict[str, Any] = {"GlacierJobParameters": {"Tier": retrieval}}
        if storage_class != "INTELLIGENT_TIERING":
            request["Days"] = days
        try:
            with translate_errors("RestoreObject", r, key):
                self.client(tier).restore_object(Bucket=r.bucket, Key=key, RestoreRequest=request)  # type: ignore[arg-type]
        except StorageError as exc:
            if exc.code == "RestoreAlreadyInProgress":
                return False
            raise
        return True

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

    def write_arguments(
        self,
        tier: StorageTier,
        content_type: str | None,
        disposition: str | None = None,
        *,
        filename: str | None = None,
        parameters: dict[str, Any] | None = None,
        checksum: bool = True,
    ) -> dict[str, Any]:
        """Return the arguments (boto3 names) every write to ``tier`` carries: type, disposition, storage
        class, encryption, checksum, and the object parameters.

        ``parameters`` are a copied object's own (kept across moves); without them the tier's
        ``object_parameters`` apply, passed through ``object_parameters_hook`` for ``filename``.
        A disposition given, or the ``attachment`` of active content, wins over a parameter's.
        """
        r = self._tiers[tier]
        if parameters is None:
            parameters = dict(r.object_parameters)
            hook = self.advanced.object_parameters_hook
            if hook is not None and filename is not None:
                parameters = parse_object_parameters(hook(filename, parameters), f"object_parameters_hook({filename!r})")
        extra: dict[str, Any] = {}
        disposition = disposition or parameters.get("ContentDisposition")
        if content_type:
            extra["ContentType"] = header_type(content_type)
            # Active content (HTML, SVG, XML, JavaScript) is never written to be shown inline unless
            # the settings say so: a copy between endpoints keeps its attachment disposition too.
            policy = "attachment" if self.advanced.active_content == "refuse" else self.advanced.active_content
            if is_active(content_type) and not (disposition or "").lower().startswith("attachment"):
                disposition = write_disposition(content_type, None, policy) or disposition
        if disposition:
            extra["ContentDisposition"] = disposition
        extra.update((name, value) for name, value in parameters.items() if name != "ContentDisposition")
        if r.storage_class:
            extra["StorageClass"] = r.storage_class
        extra.update(r.write_encryption())
        algorithm = self.checksum_algorithm(tier) if checksum else None
        if algorithm:
            extra["ChecksumAlgorithm"] = algorithm
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
        filename: str | None = None,
    ) -> ObjectInfo:
        """Store ``data`` at ``key``, streaming (multipart above the threshold); return what S3 answered.

        ``content_disposition`` is stored as the object's ``Content-Disposition``; an active
        ``content_type`` without one gets ``attachment`` unless ``active_content`` is "inline".
        The tier's encryption, checksum and object parameters (through the hook, for ``filename``)
        go with it.

        The ETag is known when the object went in one PutObject (s3transfer does not report a
        multipart upload's); the size always.

        ``max_size`` is checked before any byte is sent when the size is known, and while
        reading otherwise (an unfinished multipart upload is then aborted).
        """
        r = self._tiers[tier]
        extra = self.write_arguments(tier, content_type, content_disposition, filename=filename)
        with translate_errors("PutObject", r, key):
            if isinstance(data, bytes | bytearray | memoryview):
                size, answer = self._put_bytes(r, key, bytes(data), extra, max_size)
            elif isinstance(cast(object, data), str):
                raise InvalidOptionError("upload() got a str: pass bytes for content, or a pathlib.Path for a file on disk.")
            elif isinstance(data, os.PathLike):
                size, answer = self._put_path(r, key, os.fspath(data), extra, max_size)
            elif hasattr(data, "read"):
                size, answer = self._put_stream(r, key, data, extra, max_size)
            else:
                raise InvalidOptionError(
                    f"upload() cannot read a {type(data).__name__}: pass bytes, a binary file object or a pathlib.Path."
                )
        info = self._answered(tier, key, size, answer or {}, answer or {})
        info.content_type, info.storage_class = extra.get("ContentType"), r.storage_class
        info.parameters = {name: extra[name] for name in _KEPT if name in extra}
        return info

    # Each returns (size, PutObject's answer): None when the object went in parts (s3transfer does not
    # report a multipart upload's answer).

    def _put_bytes(self, r: ResolvedTier, key: str, data: bytes, extra: dict[str, Any], max_size: float) -> tuple[int, Any]:
        if len(data) > max_size:
            raise FileTooLargeError(len(data), max_size)
        client = self.client(r.tier)
        if len(data) <= self.advanced.multipart_threshold:
            return len(data), client.put_object(Bucket=r.bucket, Key=key, Body=data, **extra)
        client.upload_fileobj(io.BytesIO(data), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
        return len(data), None

    def _put_path(self, r: ResolvedTier, key: str, path: str, extra: dict[str, Any], max_size: float) -> tuple[int, Any]:
        size = os.stat(path).st_size
        if size > max_size:
            raise FileTooLargeError(size, max_size)
        client = self.client(r.tier)
        if size <= self.advanced.multipart_threshold:
            with open(path, "rb") as fh:
                return size, client.put_object(Bucket=r.bucket, Key=key, Body=fh, **extra)
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
            return len(body), client.put_object(Bucket=r.bucket, Key=key, Body=body, **extra)
        reader = LimitedReader(data, max_size)
        client.upload_fileobj(cast("IO[bytes]", reader), r.bucket, key, ExtraArgs=extra, Config=self._transfer_config())
        return reader.count, None

    def delete(self, tier: StorageTier, key: str) -> None:
        """Delete ``key``; deleting a missing object is not an error (S3's semantics)."""
        r = self._tiers[tier]
        with translate_errors("DeleteObject", r, key):
            self.client(tier).delete_object(Bucket=r.bucket, Key=key)

    def delete_many(self, tier: StorageTier, keys: list[str]) -> None:
        """Delete ``keys`` with one DeleteObjects request per 1,000; raise StorageError naming any key S3 kept.

        A provider without DeleteObjects (GCS's XML API answers NotImplemented) is detected at the
        first such answer and remembered: from then on the tier deletes one key per DeleteObject
        request, several at a time.
        """
        r = self._tiers[tier]
        failed: list[Any] = []
        start = 0
        while start < len(keys) and tier not in self._single_deletes:
            chunk = keys[start : start + 1000]
            try:
                with translate_errors("DeleteObjects", r, chunk[0]):
                    resp = self.client(tier).delete_objects(
                        Bucket=r.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                    )
            except StorageError as exc:
                if exc.code not in ("NotImplemented", "501"):
                    raise
                with self._lock:
                    first_time = tier not in self._single_deletes
                    self._single_deletes.add(tier)
                if first_time:
                    logger.info(
                        "s3strata: %s does not implement DeleteObjects (%s): the %s tier deletes one object per request.",
                        r.endpoint_url,
                        exc,
                        tier.value,
                    )
                break
            failed.extend(resp.get("Errors", []))
            start += len(chunk)
        if start < len(keys):
            failed.extend(self._delete_singly(r, keys[start:]))
        if failed:
            first = failed[0]
            raise StorageError(
                f"{len(failed)} of {len(keys)} objects were not deleted; first: {first.get('Key')!r} "
                f"({first.get('Code')}: {first.get('Message')}).",
                operation="DeleteObject" if tier in self._single_deletes else "DeleteObjects",
                tier=tier.value,
                bucket=r.bucket,
                key=str(first.get("Key")),
                code=str(first.get("Code")),
                transient=True,
            )

    def _delete_singly(self, r: ResolvedTier, keys: list[str]) -> list[dict[str, str]]:
        """Delete ``keys`` one DeleteObject request each, a few in parallel; return DeleteObjects-style errors."""

        def one(key: str) -> dict[str, str] | None:
            try:
                with translate_errors("DeleteObject", r, key):
                    self.client(r.tier).delete_object(Bucket=r.bucket, Key=key)
            except StorageError as exc:
                return {"Key": key, "Code": exc.code or type(exc).__name__, "Message": str(exc)}
            return None

        with ThreadPoolExecutor(max_workers=max(1, min(self.advanced.max_concurrency, 8, len(keys)))) as pool:
            return [error for error in pool.map(one, keys) if error is not None]


#: The object parameters a HEAD or GET reports that a copy between endpoints carries over.
_KEPT = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage", "Expires", "Metadata")
