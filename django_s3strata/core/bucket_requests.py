"""The S3 requests of browser uploads and bucket settings: POST policies, multipart uploads, CORS, bucket policies.

A part of ObjectStore (its base class), kept apart for size: every S3 request still goes
through ObjectStore and ``translate_errors``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode
from xml.sax.saxutils import unescape

from botocore.exceptions import ClientError

from .config import ResolvedTier
from .exceptions import StorageError
from .s3errors import translate_errors
from .types import StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, TagTypeDef

__all__ = ["BucketRequests", "UnfinishedUpload", "UploadedPart"]


#: POST policy field names that differ from the PUT header carrying the same value.
_POST_FIELD_HEADERS = {"acl": "x-amz-acl", "tagging": "x-amz-tagging"}
_TAG = re.compile(r"<Tag>\s*<Key>(.*?)</Key>\s*<Value>(.*?)</Value>\s*</Tag>", re.DOTALL)


def _header_value(member: str, value: str) -> Any:
    """Return a POST field's text as the PutObject parameter botocore expects.

    The bucket-key flag becomes a bool; tags, XML in a POST form, become the URL-encoded
    ``k=v&...`` of the ``x-amz-tagging`` header.
    """
    if member == "BucketKeyEnabled":
        return value.lower() == "true"
    if member == "Tagging" and value.lstrip().startswith("<"):
        return urlencode([(unescape(k), unescape(v)) for k, v in _TAG.findall(value)], quote_via=quote)
    return value


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

    def presigned_put(
        self, tier: StorageTier, key: str, fields: dict[str, str], size: int, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """Return a PutObject URL for ``key`` and the headers to send with it (no network).

        ``fields`` are what a POST policy would pin, by their form field names (``Content-Type``,
        ``x-amz-storage-class``, ``x-amz-meta-*``, ``tagging`` as XML, ...). Each becomes a signed
        header of the PUT, and so does Content-Length: S3 accepts only ``size`` bytes sent with
        exactly the returned headers.
        """
        resolved = self._tiers[tier]
        params: dict[str, Any] = {"Bucket": resolved.bucket, "Key": key, "ContentLength": size}
        send: dict[str, str] = {}
        by_header = self._put_object_headers()
        for name, value in fields.items():
            lower = name.lower()
            if lower.startswith("x-amz-meta-"):
                params.setdefault("Metadata", {})[name[len("x-amz-meta-") :]] = value
                send[name] = value
                continue
            header = _POST_FIELD_HEADERS.get(lower)
            member = by_header.get(header or lower)
            if member is None or member in ("ContentLength", "Bucket", "Key"):
                raise StorageError(
                    f"the header {name!r} cannot be signed into a presigned PUT.",
                    operation="PresignPut",
                    tier=tier.value,
                    bucket=resolved.bucket,
                    key=key,
                )
            params[member] = _header_value(member, value)
            send[header or name] = params[member] if member == "Tagging" else value
        with translate_errors("PresignPut", resolved, key):
            url = self.client(tier).generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return url, send

    def _put_object_headers(self) -> dict[str, str]:
        """Return {lower-case header name: PutObject parameter} from botocore's service model."""
        found = getattr(self, "_put_headers", None)
        if found is None:
            client = self.client(next(iter(self._tiers)))
            input_shape = client.meta.service_model.operation_model("PutObject").input_shape
            members = input_shape.members if input_shape is not None else {}
            found = {
                str(shape.serialization["name"]).lower(): name
                for name, shape in members.items()
                if shape.serialization.get("location") == "header"
            }
            self._put_headers: dict[str, str] = found
        return found

    def bucket_versioning(self, tier: StorageTier) -> str | None:
        """Return the versioning status of the tier's bucket: "Enabled", "Suspended", or None when never enabled."""
        resolved = self._tiers[tier]
        with translate_errors("GetBucketVersioning", resolved):
            status = self.client(tier).get_bucket_versioning(Bucket=resolved.bucket).get("Status")
        return str(status) if status else None

    def lifecycle_rules(self, tier: StorageTier) -> list[dict[str, Any]]:
        """Return the lifecycle rules of the tier's bucket (none when it has no lifecycle configuration)."""
        resolved = self._tiers[tier]
        with translate_errors("GetBucketLifecycleConfiguration", resolved):
            try:
                answer = self.client(tier).get_bucket_lifecycle_configuration(Bucket=resolved.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                return []
        return [dict(rule) for rule in answer.get("Rules", [])]

    def create_multipart_upload(
        self,
        tier: StorageTier,
        key: str,
        *,
        content_type: str,
        content_disposition: str | None = None,
        filename: str | None = None,
    ) -> str:
        """Start a multipart upload at ``key`` and return its upload ID.

        With the tier's storage class, encryption and object parameters (through the hook, for
        ``filename``); no checksum algorithm, since the parts come from a browser that sends none.
        """
        resolved = self._tiers[tier]
        extra = self.write_arguments(tier, content_type, content_disposition, filename=filename, checksum=False)
        with translate_errors("CreateMultipartUpload", resolved, key):
            return self.client(tier).create_multipart_upload(Bucket=resolved.bucket, Key=key, **extra)["UploadId"]

    def put_tagging(self, tier: StorageTier, key: str, tagging: str) -> None:
        """Set the tags of ``key`` to ``tagging`` (``k=v&k2=v2``), replacing any it had."""
        resolved = self._tiers[tier]
        tags: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in parse_qsl(tagging, keep_blank_values=True)]
        with translate_errors("PutObjectTagging", resolved, key):
            self.client(tier).put_object_tagging(Bucket=resolved.bucket, Key=key, Tagging={"TagSet": tags})

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

    # -- bucket policies ---------------------------------------------------------------

    def bucket_policy(self, tier: StorageTier) -> dict[str, Any] | None:
        """Return the policy of the tier's bucket as parsed JSON, or None when it has none."""
        resolved = self._tiers[tier]
        with translate_errors("GetBucketPolicy", resolved):
            try:
                text = self.client(tier).get_bucket_policy(Bucket=resolved.bucket)["Policy"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
                    raise
                return None
        try:
            policy = json.loads(text)
        except ValueError:
            policy = None
        if not isinstance(policy, dict):
            raise StorageError(
                "the bucket's policy is not a JSON object.", operation="GetBucketPolicy", tier=tier.value, bucket=resolved.bucket
            )
        return policy

    def put_bucket_policy(self, tier: StorageTier, policy: dict[str, Any]) -> None:
        """Set the policy of the tier's bucket to ``policy``, replacing the whole policy it had."""
        resolved = self._tiers[tier]
        with translate_errors("PutBucketPolicy", resolved):
            self.client(tier).put_bucket_policy(Bucket=resolved.bucket, Policy=json.dumps(policy))

    def public_read_bucket_policy(self, tier: StorageTier) -> dict[str, Any]:
        """Return a policy for the tier's bucket that lets anyone GET the public prefix of every tier kept in it.

        One tier alone gets ObjectStore.public_read_policy's statement. When HOT and COLD share the
        bucket, both public prefixes are in it: a policy set for one tier would replace the other's.
        """
        here = self._tiers[tier]
        resources = list(
            dict.fromkeys(
                f"arn:aws:s3:::{r.bucket}/{r.public_prefix}/*"
                for r in self._tiers.values()
                if (r.endpoint_url, r.bucket) == (here.endpoint_url, here.bucket)
            )
        )
        statement = {
            "Sid": "S3StrataPublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": resources[0] if len(resources) == 1 else resources,
        }
        return {"Version": "2012-10-17", "Statement": [statement]}

    def grants_public_read(self, tier: StorageTier, policy: dict[str, Any] | None) -> bool:
        """Return True when ``policy`` lets anyone GET every key under the tier's public prefix.

        Read as S3 reads it for an anonymous request: an Allow without Condition of ``s3:GetObject``
        (or a wildcard action covering it) to Principal ``"*"`` on a resource covering
        ``arn:aws:s3:::{bucket}/{prefix}/*``, and no Deny of the same. Statements with NotAction,
        NotResource or NotPrincipal are not read; object ACLs and Block Public Access are not seen.
        """
        if not isinstance(policy, dict):
            return False
        resolved = self._tiers[tier]
        base = f"arn:aws:s3:::{resolved.bucket}/{resolved.public_prefix}/"
        statements = policy.get("Statement")
        statements = [statements] if isinstance(statements, dict) else statements
        if not isinstance(statements, list):
            return False
        allowed = denied = False
        for statement in statements:
            if not isinstance(statement, dict) or not self._statement_covers(statement, base):
                continue
            if statement.get("Effect") == "Deny":
                denied = True
            elif statement.get("Effect") == "Allow" and not statement.get("Condition"):
                allowed = True
        return allowed and not denied

    @staticmethod
    def _statement_covers(statement: dict[str, Any], base: str) -> bool:
        """Return True when ``statement`` names anyone, ``s3:GetObject`` and every key that starts with ``base``."""
        if any(name in statement for name in ("NotAction", "NotResource", "NotPrincipal")):
            return False

        def strings(value: Any) -> list[str]:
            if isinstance(value, str):
                return [value]
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

        def glob(pattern: str) -> str:
            return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)

        principal = statement.get("Principal")
        anyone = principal == "*" or (isinstance(principal, dict) and "*" in strings(principal.get("AWS")))
        action = any(re.fullmatch(glob(a), "s3:GetObject", re.IGNORECASE) for a in strings(statement.get("Action")))
        # A pattern covers every key under the prefix when it ends in "*" and the rest matches the start of the prefix.
        resource = any(r.endswith("*") and re.match(glob(r[:-1]), base) for r in strings(statement.get("Resource")))
        return anyone and action and resource
