"""The exceptions of django-s3strata, all under one root.

::

    S3StrataError
    ├── ConfigurationError        (also ValueError) a setting is missing or invalid
    ├── InvalidOptionError        (also ValueError) a bad tier, visibility, duration or expiry
    ├── InvalidKeyError           (also ValueError) a filename, path or key we refuse
    ├── FileTooLargeError         (also ValueError) data over ``max_file_size``
    ├── ConflictError             another writer holds the file or moved it first; nothing changed
    └── StorageError              an S3 request failed; names operation, tier, bucket, key
        ├── ObjectNotFoundError   (also FileNotFoundError) no such object
        ├── BucketNotFoundError   the tier's bucket does not exist
        ├── AccessDeniedError     wrong credentials or a policy refused the request
        │   └── CredentialsError  no credentials found, or too little of their lifetime left to sign
        ├── ObjectArchivedError   the object is in an archive class (GLACIER, DEEP_ARCHIVE) and not restored
        └── VerificationError     a copy does not match its source

Errors from boto3 and botocore are translated into these at one boundary,
``s3errors.translate_errors``, and chained as ``__cause__``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "BucketNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "CredentialsError",
    "FileTooLargeError",
    "InvalidKeyError",
    "InvalidOptionError",
    "ObjectArchivedError",
    "ObjectNotFoundError",
    "S3StrataError",
    "StorageError",
    "VerificationError",
]


class S3StrataError(Exception):
    """The root of every error this library raises on purpose."""


class ConfigurationError(S3StrataError, ValueError):
    """A setting is missing or invalid; the message says what to set."""

    def __init__(self, message: str, *, tier: str | None = None, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.tier = tier
        #: The missing field names (as S3TierConfig names them), when fields are missing.
        self.missing = missing


class InvalidOptionError(S3StrataError, ValueError):
    """An argument is out of range or does not apply to this file."""


class InvalidKeyError(S3StrataError, ValueError):
    """A filename, path suffix or object key is unsafe or malformed."""


class FileTooLargeError(S3StrataError, ValueError):
    """The data is larger than ``max_file_size``; nothing was stored."""

    def __init__(self, size: int | None, limit: float) -> None:
        self.size = size
        self.limit = limit
        shown = f"{size} bytes" if size is not None else "more bytes than allowed"
        super().__init__(
            f"File too large: {shown}, the limit is {limit:.0f} bytes "
            "(S3StrataAdvancedOptions.max_file_size). Nothing was stored."
        )


class ConflictError(S3StrataError):
    """Another writer holds the file or moved it first; this operation changed nothing."""

    def __init__(self, file_id: object, path: str, message: str | None = None, *, holder: str | None = None) -> None:
        self.file_id = file_id
        self.path = path
        #: The claim's owner when another writer's claim stopped this one ("host:pid:token").
        self.holder = holder
        super().__init__(
            message
            or f"record {file_id!r} no longer points at {path!r}: another move or a delete committed first. "
            "Nothing was changed by this move; read the record again and retry if still needed."
        )


class StorageError(S3StrataError):
    """An S3 request failed. Carries the operation, tier, bucket, key and S3 error code."""

    #: True when a retry later may succeed (5xx, throttling, timeouts, dropped connections).
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        tier: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        code: str | None = None,
        transient: bool | None = None,
    ) -> None:
        self.operation = operation
        self.tier = tier
        self.bucket = bucket
        self.key = key
        self.code = code
        if transient is not None:
            self.transient = transient
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        tier_part = f" in the {tier} tier" if tier else ""
        code_part = f" [{code}]" if code else ""
        super().__init__(f"{operation} failed for {where}{tier_part}{code_part}: {message}")


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The object does not exist in the tier's bucket."""


class BucketNotFoundError(StorageError):
    """The tier's bucket does not exist on its endpoint."""


class AccessDeniedError(StorageError):
    """The endpoint refused the credentials or the request."""


class CredentialsError(AccessDeniedError):
    """No credentials to sign with: none found, loading them failed, or they expire too soon to sign a URL."""


class ObjectArchivedError(StorageError):
    """The object sits in an archive storage class and has no restored copy: it cannot be read, presigned or copied.

    The message says how to request a restore; ``storage_class`` names the class and ``restoring``
    is True while a restore is already under way.
    """

    #: Django's template engine renders an empty string for a variable whose lookup raises this
    #: (``{{ file.url }}`` of an archived file), instead of failing the whole page.
    silent_variable_failure = True

    def __init__(self, message: str, *, storage_class: str | None = None, restoring: bool = False, **where: Any) -> None:
        self.storage_class = storage_class
        self.restoring = restoring
        super().__init__(message, **where)

    @staticmethod
    def hint(storage_class: str | None, restoring: bool = False) -> str:
        """Return what to tell a caller about an archived object: why it cannot be read, and how to restore it."""
        where = f"in the archive class {storage_class}" if storage_class else "in an archive storage class"
        if restoring:
            return (
                f"the object is {where} and a restore is under way: it becomes readable when the restore completes "
                "(minutes to 48 hours, by class and retrieval tier); nothing else to do."
            )
        return (
            f"the object is {where}: it cannot be read, presigned or copied until it is restored. Request a restore "
            "with FileManager.restore(file, RestoreOptions(days=1)) (in Django: PhysicalFile.restore(), the admin "
            "action 'Request restore', or manage.py s3strata_restore <id>), or move it to HOT with "
            "set_tier(..., restore=True); see docs/archive.md."
        )


class VerificationError(StorageError):
    """A copied object differs from its source (size or checksum); the source is kept."""
