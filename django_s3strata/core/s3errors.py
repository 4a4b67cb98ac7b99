"""boto3 and botocore errors translated into S3StrataError subclasses: here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .config import ResolvedTier
from .exceptions import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    ObjectArchivedError,
    ObjectNotFoundError,
    S3StrataError,
    StorageError,
)

__all__ = ["etag_is_md5", "etag_of", "full_object_checksums", "plain_md5", "translate_errors"]

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
#: A GET of an archived object (InvalidObjectState), a copy from one (ObjectNotInActiveTierError).
_ARCHIVED = {"InvalidObjectState", "ObjectNotInActiveTierError"}
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
        if code in _ARCHIVED and operation != "RestoreObject":
            found: Any = err
            storage_class = str(found["StorageClass"]) if found.get("StorageClass") else None
            raise ObjectArchivedError(
                ObjectArchivedError.hint(storage_class), code=code, storage_class=storage_class, **where
            ) from exc
        if code in _DENIED:
            raise AccessDeniedError(
                f"{text} Check the {tier.tier.value} tier's "
                f"{'access_key and secret_key' if tier.access_key else f'credentials ({tier.describe_credentials()})'} "
                f"for {tier.endpoint_url}, and that its policy allows this request.",
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
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        # No keys in the settings and none in boto3's chain, or the chain's endpoint failed.
        raise CredentialsError(
            f"{exc}: the {tier.tier.value} tier signs with {tier.describe_credentials()}. Set its access_key and "
            "secret_key, or give the chain credentials (environment, profile, web identity, container or instance role).",
            transient=isinstance(exc, CredentialRetrievalError),
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


def etag_of(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def plain_md5(etag: str | None) -> bool:
    """Return True when an ETag has the shape of a content MD5: 32 hex digits, not a multipart upload's.

    The shape alone does not make it one: with SSE-KMS or SSE-C the ETag is 32 hex digits and not
    the MD5 (``etag_is_md5`` reads the answer that carried it).
    """
    return etag is not None and len(etag) == 32 and "-" not in etag


#: The checksums S3 reports, by algorithm: the answer's member names.
_CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


def full_object_checksums(result: Any) -> dict[str, str]:
    """Return the full-object checksums in S3's answer (``{"SHA256": "<base64>"}``).

    A multipart upload's checksum of part checksums (ChecksumType COMPOSITE, or a multipart ETag
    without a ChecksumType, as some servers answer) is left out: it cannot be compared.
    """
    if not hasattr(result, "get"):
        return {}
    kind = result.get("ChecksumType")
    if kind == "COMPOSITE" or (kind is None and "-" in str(result.get("ETag") or "")):
        return {}
    found = {name: result.get(f"Checksum{name}") for name in _CHECKSUMS}
    return {name: str(value) for name, value in found.items() if value and "-" not in str(value)}


#: ``x-amz-server-side-encryption`` values under which an ETag is not the content's MD5.
_KMS = ("aws:kms", "aws:kms:dsse")


def etag_is_md5(etag: str | None, answer: Any) -> bool:
    """Return True when ``etag`` is the content's MD5 by what S3's ``answer`` (a boto3 response) shows.

    Only when it is one part's ETag and the answer shows neither SSE-KMS nor SSE-C.
    """
    if not plain_md5(etag) or not hasattr(answer, "get"):
        return False
    return answer.get("ServerSideEncryption") not in _KMS and not answer.get("SSECustomerAlgorithm")
