"""Verified copies: server-side (one CopyObject, or parallel UploadPartCopy parts), streamed between endpoints, or not read first.

``CopyRequests`` is a base class of ``ObjectStore``; what it uses of the store is declared below.
A copy is verified by the content's MD5 where both ETags are MD5s, else by a checksum both sides
report, else by size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from .config import ResolvedTier, S3StrataAdvancedOptions
from .exceptions import InvalidOptionError, VerificationError
from .s3errors import plain_md5, translate_errors
from .streams import LimitedReader
from .types import ObjectInfo, StorageTier

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3.client import S3Client

__all__ = ["MAX_PARTS", "MAX_SINGLE_COPY", "CopyRequests", "Streamed", "same_content"]

#: The largest object one CopyObject copies (S3 refuses larger ones with InvalidRequest).
MAX_SINGLE_COPY = 5 * 1024**3
MAX_PARTS = 10_000


class CopyRequests:
    """Copies between keys and tiers, each verified before it is reported."""

    # -- what a subclass provides (ObjectStore) ----------------------------------------

    _tiers: dict[StorageTier, ResolvedTier]
    advanced: S3StrataAdvancedOptions

    if TYPE_CHECKING:

        def client(self, tier: StorageTier) -> S3Client: ...
        def head(self, tier: StorageTier, key: str) -> ObjectInfo | None: ...
        def require(self, tier: StorageTier, key: str) -> ObjectInfo: ...
        def checksum_algorithm(self, tier: StorageTier) -> str | None: ...
        def _answered(self, tier: StorageTier, key: str, size: int, answer: Any, result: Any) -> ObjectInfo: ...
        def _transfer_config(
            self, *, concurrency: int | None = None, chunksize: int | None = None, threshold: int | None = None
        ) -> TransferConfig: ...
        def write_arguments(
            self,
            tier: StorageTier,
            content_type: str | None,
            disposition: str | None = None,
            *,
            filename: str | None = None,
            parameters: dict[str, Any] | None = None,
            checksum: bool = True,
        ) -> dict[str, Any]: ...

    # -- copies ---------------------------------------------------------------------------

    def copy(
        self, src: StorageTier, src_key: str, dst: StorageTier, dst_key: str, *, source: ObjectInfo | None = None
    ) -> ObjectInfo:
        """Copy an object and verify the copy; return the copy's HEAD (or what the copy request answered).

        Same location: server-side CopyObject (parallel UploadPartCopy parts above ``part_copy_threshold``), the
        object's metadata, parameters and tags kept. Different endpoints: a streamed GET into a
        multipart upload, in bounded memory, carrying the same over from the GET's answer. Either
        way the destination tier's storage class, encryption and checksum apply.

        Verified by the content's MD5 where both ETags are MD5s, else by a checksum both sides
        report, else by size. On failure the source is untouched; the caller decides whether the
        destination (which another writer may have committed meanwhile) is a partial copy to remove.
        """
        if (src, src_key) == (dst, dst_key):
            raise InvalidOptionError("copy source and destination are the same object.")
        source = source or self.require(src, src_key)
        s, d = self._tiers[src], self._tiers[dst]
        streamed: Streamed | None = None
        copy: ObjectInfo | None = None
        with translate_errors("CopyObject", d, dst_key):
            if s.same_location(d):
                answered = self._server_side_copy(s, src_key, d, dst_key, source)
                if answered is None and source.etag:
                    # In parts: every UploadPartCopy was pinned to the source's ETag, the parts' ranges
                    # cover exactly its size, and CompleteMultipartUpload succeeded, so the copy holds
                    # exactly those bytes (its own ETag, of parts, could not be compared anyway).
                    copy = ObjectInfo(dst_key, source.size, None, None, source.content_type, d.storage_class, etag_md5=False)
                elif answered is not None:
                    same = same_content(source, answered)
                    if same is False:
                        self._verify(source, answered, None, d, dst_key)  # raises, naming what differs
                    # Proven by MD5 or checksum: the copy holds the source's bytes, of the size known. Else (an
                    # ETag that is no MD5 and no checksum on both sides) a HEAD of the copy compares the size:
                    # some servers ignore CopySourceIfMatch, so the pin alone proves nothing.
                    if same:
                        copy = answered
            else:
                streamed = self._streamed_copy(src, s, src_key, dst, d, dst_key, source)
        if copy is None:
            copy = self.head(dst, dst_key)
        self._verify(source, copy, streamed, d, dst_key)
        assert copy is not None
        return copy

    def copy_unread(self, src: StorageTier, src_key: str, dst: StorageTier, dst_key: str) -> ObjectInfo | None:
        """Copy an object not read first with one server-side CopyObject; None when it is too large for one.

        For a record that knows no ETag: instead of a HEAD and a copy pinned to what it answered,
        the copy takes whatever version is there now (CopyObject is S3's own atomic operation, and
        its answer's ETag is the copy's). Both tiers must share a location. The answer tells no
        size: the result's ``size`` is -1. An object above 5 GiB (S3 refuses it with InvalidRequest)
        is left to ``copy``, which reads it and copies in parts.
        """
        s, d = self._tiers[src], self._tiers[dst]
        extra: dict[str, Any] = dict(d.write_encryption())
        if d.storage_class:
            extra["StorageClass"] = d.storage_class
        algorithm = self.checksum_algorithm(d.tier)
        if algorithm:
            extra["ChecksumAlgorithm"] = algorithm
        with translate_errors("CopyObject", d, dst_key):
            try:
                resp = self.client(dst).copy_object(
                    Bucket=d.bucket,
                    Key=dst_key,
                    CopySource={"Bucket": s.bucket, "Key": src_key},
                    MetadataDirective="COPY",
                    **extra,
                )
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if _too_large_for_one_copy(error):
                    return None
                if error.get("Code") in ("NoSuchKey", "404", "NotFound"):
                    with translate_errors("CopyObject", s, src_key):  # the source is what is missing
                        raise
                raise
        answered = self._answered(d.tier, dst_key, -1, resp, resp.get("CopyObjectResult", {}))
        answered.storage_class = d.storage_class
        return answered

    def _server_side_copy(
        self, s: ResolvedTier, src_key: str, d: ResolvedTier, dst_key: str, source: ObjectInfo
    ) -> ObjectInfo | None:
        """Copy on the server; return what a single CopyObject answered (None when copied in parts)."""
        client = self.client(d.tier)
        copy_source = {"Bucket": s.bucket, "Key": src_key}
        # Metadata, parameters and tags are copied with the object (MetadataDirective and TaggingDirective
        # COPY); storage class and encryption are the destination's, which COPY allows setting.
        extra: dict[str, Any] = dict(d.write_encryption())
        if d.storage_class:
            extra["StorageClass"] = d.storage_class
        if source.etag:
            # Copy exactly the version that was verified, not one written since (every part, if in parts).
            extra["CopySourceIfMatch"] = f'"{source.etag}"'
        if source.size <= self.advanced.part_copy_threshold:
            # The source's own algorithm where it has a checksum: the copy's is then comparable with it.
            algorithm = next(iter(source.checksums), None) or self.checksum_algorithm(d.tier)
            if algorithm:
                extra["ChecksumAlgorithm"] = algorithm
            resp = client.copy_object(Bucket=d.bucket, Key=dst_key, CopySource=copy_source, MetadataDirective="COPY", **extra)  # type: ignore[arg-type]
            answered = self._answered(d.tier, dst_key, source.size, resp, resp.get("CopyObjectResult", {}))
            answered.content_type, answered.storage_class = source.content_type, d.storage_class
            answered.parameters = dict(source.parameters)
            return answered
        # Large objects: parts copied in parallel on the server (UploadPartCopy), much faster than one
        # CopyObject, and the only way above 5 GiB. s3transfer carries the metadata, parameters and tags
        # over from its own HEAD; the content type is also given, for s3transfer releases that do not.
        part = max(self.advanced.multipart_chunksize, math.ceil(source.size / MAX_PARTS))
        # Parts copied on the server cost the client no memory: as many in flight as connections allow.
        concurrency = self.advanced.part_copy_concurrency or self.advanced.max_concurrency
        cfg = self._transfer_config(chunksize=part, threshold=self.advanced.part_copy_threshold, concurrency=concurrency)
        if source.content_type:
            extra["ContentType"] = source.content_type
        if source.tag_count is None or source.tag_count:
            extra["TaggingDirective"] = "COPY"  # s3transfer copies the tags after the parts (a GetObjectTagging)
        client.copy(copy_source, d.bucket, dst_key, ExtraArgs=extra, Config=cfg)  # type: ignore[arg-type]
        return None

    def _streamed_copy(
        self, src: StorageTier, s: ResolvedTier, src_key: str, dst: StorageTier, d: ResolvedTier, dst_key: str, source: ObjectInfo
    ) -> Streamed:
        """Stream the source into the destination; return the digests of the bytes read.

        The GET's answer (pinned to the source's ETag) supplies what the copy carries over: content
        type, disposition, parameters, metadata and, when the object has some, its tags.
        """
        with translate_errors("GetObject", s, src_key):
            params: dict[str, Any] = {"Bucket": s.bucket, "Key": src_key}
            if source.etag:
                params["IfMatch"] = f'"{source.etag}"'
            if self.checksum_algorithm(src):
                params["ChecksumMode"] = "ENABLED"
            answer = self.client(src).get_object(**params)
            body = answer["Body"]
        try:
            got = self._answered(src, src_key, source.size, answer, answer)
            if source.etag and got.etag != source.etag:
                # A server that ignores If-Match sent another version: the record or HEAD in hand is stale.
                raise VerificationError(
                    f"the source's ETag is {got.etag}, not {source.etag}: it changed since it was read.",
                    operation="GetObject",
                    tier=s.tier.value,
                    bucket=s.bucket,
                    key=src_key,
                )
            # The GET's answer tells what a record could not: whether the ETag is an MD5.
            source_etag_md5 = got.etag_md5 if source.etag_md5 is None else source.etag_md5
            kept = dict(got.parameters)
            if got.tag_count:
                with translate_errors("GetObjectTagging", s, src_key):
                    tags = self.client(src).get_object_tagging(Bucket=s.bucket, Key=src_key)["TagSet"]
                kept["Tagging"] = urlencode([(t["Key"], t["Value"]) for t in tags])
            # The checksums to prove the bytes by: the source's own (full-object) and the copy's.
            wanted = {*got.checksums, *source.checksums, self.checksum_algorithm(dst) or ""}
            reader = LimitedReader(body, math.inf, hash_md5=True, checksums=wanted)
            extra = self.write_arguments(dst, got.content_type or source.content_type, parameters=kept)
            # Few parts in flight: memory stays near concurrency x chunksize whatever the object size.
            cfg = self._transfer_config(concurrency=3)
            self.client(dst).upload_fileobj(cast("IO[bytes]", reader), d.bucket, dst_key, ExtraArgs=extra, Config=cfg)
        finally:
            body.close()
        if reader.count != source.size:
            raise VerificationError(
                f"read {reader.count} bytes from the source, expected {source.size}.",
                operation="CopyObject",
                tier=d.tier.value,
                bucket=d.bucket,
                key=dst_key,
            )
        return Streamed(reader.md5_hex(), reader.digests(), {**source.checksums, **got.checksums}, source_etag_md5)

    def _verify(
        self, source: ObjectInfo, copy: ObjectInfo | None, streamed: Streamed | None, d: ResolvedTier, dst_key: str
    ) -> None:
        def fail(why: str) -> NoReturn:
            raise VerificationError(why, operation="VerifyCopy", tier=d.tier.value, bucket=d.bucket, key=dst_key)

        if copy is None:
            fail("the copy is missing after the copy request succeeded.")
        if copy.size != source.size:
            fail(f"the copy has {copy.size} bytes, the source {source.size}.")
        if streamed is None:
            if same_content(source, copy) is False:
                fail(f"the copy's ETag or checksum differs from the source's ({_described(copy)} against {_described(source)}).")
            return
        read = ObjectInfo(dst_key, copy.size, streamed.md5, etag_md5=True, checksums=streamed.checksums)
        if same_content(replace(source, etag_md5=streamed.source_etag_md5, checksums=streamed.source_checksums), read) is False:
            fail(f"the bytes read ({_described(read)}) are not the source's ({_described(source)}).")
        if same_content(read, copy) is False:
            fail(f"the copy's ETag or checksum differs from the bytes read ({_described(copy)} against {_described(read)}).")


def _too_large_for_one_copy(error: Mapping[str, Any]) -> bool:
    """True when S3 refused a CopyObject for the source's size (AWS: InvalidRequest; others: EntityTooLarge)."""
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    return code == "EntityTooLarge" or (code == "InvalidRequest" and ("larger than" in message or "too large" in message))


@dataclass(frozen=True)
class Streamed:
    """What a streamed copy read: the MD5 and checksums of the bytes, and the checksums the source reported."""

    md5: str
    checksums: dict[str, str]
    source_checksums: dict[str, str]
    source_etag_md5: bool | None


def _known_md5(info: ObjectInfo) -> str | None:
    """Return the content MD5 ``info`` carries: its ETag when an answer showed it is one (or a record's MD5-shaped ETag)."""
    if info.etag_md5 or (info.etag_md5 is None and plain_md5(info.etag)):
        return info.etag
    return None


def same_content(a: ObjectInfo, b: ObjectInfo) -> bool | None:
    """Return whether ``a`` and ``b`` hold the same bytes by their MD5s or a checksum both report; None: cannot tell."""
    md5_a, md5_b = _known_md5(a), _known_md5(b) if b.etag_md5 is not None else None
    if md5_a is not None and md5_b is not None:
        return md5_a == md5_b
    for algorithm, value in a.checksums.items():
        other = b.checksums.get(algorithm)
        if other is not None:
            return other == value
    return None


def _described(info: ObjectInfo) -> str:
    shown = [f"ETag {info.etag}" + ("" if _known_md5(info) else " (not an MD5)")] if info.etag else []
    shown += [f"{algorithm} {value}" for algorithm, value in sorted(info.checksums.items())]
    return ", ".join(shown) or "no ETag or checksum"
