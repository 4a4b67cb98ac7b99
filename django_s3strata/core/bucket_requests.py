"""The S3 requests of browser uploads and bucket settings: POST policies, multipart uploads, CORS.

A part of ObjectStore (its base class), kept apart for size: every S3 request still goes
through ObjectStore and ``translate_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from .config import ResolvedTier
from .s3errors import translate_errors
from .types import StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["BucketRequests", "UnfinishedUpload", "UploadedPart"]


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


class BucketRequests:
    """Browser uploads' and bucket settings' requests; ObjectStore supplies the clients and tiers."""

    _tiers: dict[StorageTier, ResolvedTier]

    if TYPE_CHECKING:

        def client(self, tier: StorageTier) -> S3Client: ...

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
