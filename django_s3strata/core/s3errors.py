"""boto3 and botocore errors translated into S3StrataError subclasses: here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .config import ResolvedTier
from .exceptions import (
    AccessDeniedError,
    BucketNotFoundError,
    ObjectNotFoundError,
    S3StrataError,
    StorageError,
)

__all__ = ["etag_of", "plain_md5", "translate_errors"]

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


def etag_of(value: Any) -> str | None:
    return str(value).strip('"') if value else None


def plain_md5(etag: str | None) -> bool:
    """Return True when an ETag is the MD5 of the content (not multipart, not encrypted with KMS)."""
    return etag is not None and len(etag) == 32 and "-" not in etag
