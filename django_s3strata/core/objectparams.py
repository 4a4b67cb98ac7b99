"""Object parameters and encryption settings: checked once, then sent with every write and carried across moves.

A tier's ``object_parameters`` name what every object written to it carries (``CacheControl``,
``ContentDisposition``, ``ContentEncoding``, ``ContentLanguage``, ``Metadata``, ``Tagging``,
``Expires``); an optional hook returns per-file values. Names are boto3's; unknown ones are refused.
Its ``server_side_encryption`` ("AES256" or "aws:kms", with ``sse_kms_key_id`` and
``bucket_key_enabled``) and ``checksum_algorithm`` are checked here too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from .exceptions import ConfigurationError

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "OBJECT_PARAMETERS",
    "SERVER_SIDE_ENCRYPTIONS",
    "ChecksumAlgorithm",
    "ObjectParametersHook",
    "ServerSideEncryption",
    "check_encryption",
    "parse_object_parameters",
    "post_fields",
]

ServerSideEncryption = Literal["AES256", "aws:kms"]
SERVER_SIDE_ENCRYPTIONS: tuple[str, ...] = ("AES256", "aws:kms")
#: The checksums S3 computes and keeps (CRC32C and CRC64NVME need botocore's optional awscrt).
ChecksumAlgorithm = Literal["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]
CHECKSUM_ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME")
#: The parameters a tier may set on its objects (boto3's names).
OBJECT_PARAMETERS: tuple[str, ...] = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Metadata",
    "Tagging",
    "Expires",
)
#: Called with a new file's name and its tier's parameters; returns the parameters for this file.
ObjectParametersHook = Callable[[str, dict[str, Any]], Mapping[str, Any] | None]

_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
# S3 user metadata travels as x-amz-meta-<name> headers: names are header tokens, values printable ASCII.
_META_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or not _PRINTABLE.fullmatch(value):
        raise ConfigurationError(f"{what}={value!r} is invalid: give a non-empty string of printable ASCII (no line breaks).")
    return value


def _tags(value: object, what: str) -> str:
    pairs: list[tuple[str, str]]
    if isinstance(value, Mapping):
        pairs = [(k, v) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = parse_qsl(value, keep_blank_values=True)
    else:
        raise ConfigurationError(f"{what} must be a dict of tags such as {{'team': 'web'}} or 'team=web&kind=report'.")
    if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in pairs) or len(pairs) > 10:
        raise ConfigurationError(
            f"{what}={value!r} is invalid: give at most 10 tags, each a non-empty string key and a string value."
        )
    return urlencode(pairs)


def _expires(value: object, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            value = None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigurationError(f"{what} must be an aware datetime or an HTTP date such as 'Wed, 21 Oct 2030 07:28:00 GMT'.")
    return value


def parse_object_parameters(value: object, what: str = "object_parameters") -> dict[str, Any]:
    """Return ``value`` checked and normalised (Tagging as a query string, Expires as a datetime), or raise ConfigurationError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a dict such as {{'CacheControl': 'max-age=86400'}}.")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in OBJECT_PARAMETERS:
            close = difflib.get_close_matches(str(name), OBJECT_PARAMETERS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"Unknown object parameter {name!r} in {what}.{hint} Known: {', '.join(OBJECT_PARAMETERS)}.")
        where = f"{what}[{name!r}]"
        if name in _HEADERS:
            out[name] = _text(item, where)
        elif name == "Metadata":
            if not isinstance(item, Mapping) or not all(
                isinstance(k, str) and _META_NAME.fullmatch(k) and isinstance(v, str) and _PRINTABLE.fullmatch(v)
                for k, v in item.items()
            ):
                raise ConfigurationError(
                    f"{where} must map names (letters, digits, '-', '_') to printable ASCII strings: "
                    "S3 sends user metadata as HTTP headers."
                )
            out[name] = {k.lower(): v for k, v in item.items()}
        elif name == "Tagging":
            out[name] = _tags(item, where)
        else:
            out[name] = _expires(item, where)
    return out


def check_encryption(sse: object, kms_key_id: object, bucket_key: object, checksum: object, where: str) -> None:
    """Raise ConfigurationError unless the encryption and checksum settings of ``where`` (a tier) fit together."""
    if sse is not None and sse not in SERVER_SIDE_ENCRYPTIONS:
        raise ConfigurationError(
            f"{where} server_side_encryption={sse!r} is invalid: use 'AES256' (SSE-S3) or 'aws:kms' (SSE-KMS); "
            "SSE-C (keys of your own) is not supported."
        )
    if kms_key_id is not None and (sse != "aws:kms" or not isinstance(kms_key_id, str) or not kms_key_id):
        raise ConfigurationError(f"{where} sse_kms_key_id is set: it needs server_side_encryption='aws:kms' and a key ID or ARN.")
    if bucket_key is not None and (sse != "aws:kms" or not isinstance(bucket_key, bool)):
        raise ConfigurationError(f"{where} bucket_key_enabled applies to SSE-KMS only: set server_side_encryption='aws:kms'.")
    if checksum is not None and checksum not in CHECKSUM_ALGORITHMS:
        raise ConfigurationError(
            f"{where} checksum_algorithm={checksum!r} is invalid: use one of {', '.join(CHECKSUM_ALGORITHMS)}, or None."
        )


def post_fields(params: Mapping[str, Any], *, post: bool = True) -> dict[str, str]:
    """Return the form fields of a POST upload (``post``) or the headers of a presigned PUT that set the write
    arguments ``params`` (boto3 names).

    Tags are left out (the uploader sets them after the upload lands, with PutObjectTagging: SeaweedFS
    and others take no ``tagging`` form field), and so is Content-Language from a POST, which S3's
    POST Object does not take.
    """
    names = {
        "CacheControl": "Cache-Control",
        "ContentDisposition": "Content-Disposition",
        "ContentEncoding": "Content-Encoding",
        "ContentType": "Content-Type",
        "StorageClass": "x-amz-storage-class",
        "ServerSideEncryption": "x-amz-server-side-encryption",
        "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    }
    fields: dict[str, str] = {}
    for name, value in params.items():
        if name in names:
            fields[names[name]] = str(value)
        elif name == "ContentLanguage" and not post:
            fields["Content-Language"] = str(value)
        elif name == "BucketKeyEnabled":
            fields["x-amz-server-side-encryption-bucket-key-enabled"] = "true" if value else "false"
        elif name == "Expires":
            fields["Expires"] = format_datetime(value.astimezone(UTC), usegmt=True) if isinstance(value, datetime) else str(value)
        elif name == "Metadata":
            fields.update({f"x-amz-meta-{k}": v for k, v in value.items()})
    return fields
