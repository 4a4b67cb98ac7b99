"""S3StrataAdvancedOptions (defaults and tuning) and the parsers of tiers, visibilities and durations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .contenttypes import ACTIVE_CONTENT_POLICIES, ActiveContent
from .exceptions import ConfigurationError, InvalidOptionError
from .objectparams import ObjectParametersHook
from .types import FileVisibility, StorageTier

__all__ = [
    "MAX_DURATION",
    "MAX_PRESIGN_EXPIRY",
    "S3StrataAdvancedOptions",
    "parse_seconds",
    "parse_tier",
    "parse_visibility",
]

#: S3 refuses SigV4 presigned URLs valid for longer than seven days.
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600
#: The longest hot duration or grace period accepted: 100 years of 365 days (3,153,600,000 s). Far
#: past any real need, and far inside what a datetime can hold (year 9999), so ``now + duration``
#: cannot overflow after an object was already stored.
MAX_DURATION = 100 * 365 * 24 * 3600
ChecksumWhen = Literal["when_supported", "when_required"]
ContentDisposition = Literal["inline", "attachment"]


def parse_seconds(
    value: object, what: str, *, allow_none: bool = True, minimum: int = 0, maximum: int = MAX_DURATION
) -> int | None:
    """Return ``value`` as whole seconds from ``minimum`` to ``maximum`` (None when allowed), else raise InvalidOptionError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        span = f"{maximum // (365 * 86400)} years" if maximum >= 365 * 86400 else f"{maximum // 86400} days"
        raise InvalidOptionError(
            f"{what}={value!r} is invalid: give a whole number of seconds from {minimum} to {maximum} ({span})."
        )
    return value


def parse_tier(value: object, *, what: str = "tier") -> StorageTier:
    """Return ``value`` as a StorageTier, accepting "HOT"/"COLD" in any case."""
    if isinstance(value, StorageTier):
        return value
    if isinstance(value, str) and value.upper() in StorageTier.__members__:
        return StorageTier(value.upper())
    raise InvalidOptionError(f"Invalid {what} {value!r}: use StorageTier.HOT or StorageTier.COLD ('HOT' or 'COLD').")


def parse_visibility(value: object, *, what: str = "visibility") -> FileVisibility:
    """Return ``value`` as a FileVisibility, accepting "PUBLIC"/"PRIVATE" in any case."""
    if isinstance(value, FileVisibility):
        return value
    if isinstance(value, str) and value.upper() in FileVisibility.__members__:
        return FileVisibility(value.upper())
    raise InvalidOptionError(
        f"Invalid {what} {value!r}: use FileVisibility.PUBLIC or FileVisibility.PRIVATE ('PUBLIC' or 'PRIVATE')."
    )


@dataclass
class S3StrataAdvancedOptions:
    """Defaults and tuning; every field has a safe default."""

    default_presigned_url_expiration: int = 14400  # seconds
    max_file_size: float = math.inf  # bytes
    default_storage_tier: StorageTier | str = StorageTier.HOT
    default_visibility: FileVisibility | str = FileVisibility.PRIVATE
    # Beyond upstream:
    #: Storage class for objects written to COLD when the tier sets none (e.g. "STANDARD_IA").
    cold_storage_class: str | None = None
    #: When set, presigned URLs carry ``Content-Disposition: <this>; filename*=<record filename>``.
    presign_content_disposition: ContentDisposition | None = None
    #: Files a browser would run as a page (HTML, XHTML, SVG, XML, JavaScript): stored with
    #: ``Content-Disposition: attachment`` ("attachment"), refused ("refuse"), or as sent ("inline").
    active_content: ActiveContent = "attachment"
    #: Parallel S3 requests per process: the thread pool and the HTTP connection pool size.
    max_concurrency: int = 16
    #: Threads of the async API for steps that move a large body through this process (uploads over
    #: 1 MiB, streamed copies between endpoints, downloads); None: one per core, at least 2. Hashing
    #: and signing a body keeps a thread on a core, and more of them than cores stall the event loop.
    async_bulk_concurrency: int | None = None
    #: Uploads and streamed copies above this size go multipart, in parts of ``multipart_chunksize``.
    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    #: boto3's checksum settings. None (the default) picks per tier: "when_supported" on AWS
    #: (``*.amazonaws.com``), "when_required" elsewhere, since R2, B2 and GCS have refused the CRC32
    #: headers botocore >= 1.36 adds to every upload (docs/providers.md).
    request_checksum_calculation: ChecksumWhen | None = None
    response_checksum_validation: ChecksumWhen | None = None
    #: Attempts per request (first try included) for transient errors, with exponential backoff and jitter.
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Orphans younger than this (seconds) are never deleted or adopted: their upload may be in flight.
    orphan_grace_period: int = 24 * 3600
    #: How long a writer's claim on the keys it writes lasts (seconds): a killed writer blocks its
    #: files for at most this long. Longer than any single move's copy should take.
    claim_seconds: int = 900
    #: How long a move or delete waits for another writer's claim on the same file (seconds)
    #: before it raises ConflictError; sweeps never wait.
    claim_wait: float = 10.0
    #: Server-side copies of objects above this size go in parallel UploadPartCopy parts, at most
    #: ``part_copy_concurrency`` at once (None: ``max_concurrency``); below it, one CopyObject (a
    #: single server-side stream, which S3 refuses above 5 GiB). The default is from the bench
    #: (docs/performance.md): on a local server one CopyObject of 256 MiB beats 32 parallel parts;
    #: on AWS, parts are faster for large objects, so set 64 MiB or so there.
    part_copy_threshold: int = 1024 * 1024 * 1024
    part_copy_concurrency: int | None = None
    #: Called with a new file's name and its tier's ``object_parameters``; returns the parameters to
    #: write it with (per-file Cache-Control, metadata, tags, ...). See docs/django.md.
    object_parameters_hook: ObjectParametersHook | None = None

    def __post_init__(self) -> None:
        try:
            self.default_storage_tier = parse_tier(self.default_storage_tier, what="default_storage_tier")
            self.default_visibility = parse_visibility(self.default_visibility, what="default_visibility")
        except InvalidOptionError as exc:
            raise ConfigurationError(str(exc)) from None
        exp = self.default_presigned_url_expiration
        if isinstance(exp, bool) or not isinstance(exp, int) or not 1 <= exp <= MAX_PRESIGN_EXPIRY:
            raise ConfigurationError(
                f"default_presigned_url_expiration={exp!r} is invalid: "
                f"give whole seconds from 1 to {MAX_PRESIGN_EXPIRY} (7 days, S3's limit)."
            )
        if isinstance(self.max_file_size, bool) or not isinstance(self.max_file_size, int | float) or not self.max_file_size > 0:
            raise ConfigurationError(
                f"max_file_size={self.max_file_size!r} is invalid: give a positive number of bytes (math.inf for no limit)."
            )
        for name in ("max_concurrency", "max_attempts", "async_bulk_concurrency"):
            value = getattr(self, name)
            if name == "async_bulk_concurrency" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}={value!r} is invalid: give a whole number of at least 1.")
        if isinstance(self.claim_seconds, bool) or not isinstance(self.claim_seconds, int) or self.claim_seconds < 1:
            raise ConfigurationError(f"claim_seconds={self.claim_seconds!r} is invalid: give whole seconds, at least 1.")
        if isinstance(self.claim_wait, bool) or not isinstance(self.claim_wait, int | float) or not 0 <= self.claim_wait <= 3600:
            raise ConfigurationError(f"claim_wait={self.claim_wait!r} is invalid: give seconds from 0 to 3600.")
        threshold = self.part_copy_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 5 * 1024**2 <= threshold <= 5 * 1024**3:
            raise ConfigurationError(
                f"part_copy_threshold={threshold!r} is invalid: give bytes from 5 MiB (5242880, S3's smallest part) "
                "to 5 GiB (5368709120, the largest object one CopyObject copies)."
            )
        concurrency = self.part_copy_concurrency
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigurationError(
                f"part_copy_concurrency={concurrency!r} is invalid: give a whole number of at least 1, or None."
            )
        if self.multipart_chunksize < 5 * 1024 * 1024:
            raise ConfigurationError("multipart_chunksize must be at least 5 MiB (5242880), S3's smallest part.")
        if self.multipart_threshold < 1:
            raise ConfigurationError("multipart_threshold must be a positive number of bytes.")
        for name in ("request_checksum_calculation", "response_checksum_validation"):
            if getattr(self, name) not in (None, "when_supported", "when_required"):
                raise ConfigurationError(f"{name} must be None (chosen per endpoint), 'when_supported' or 'when_required'.")
        if self.presign_content_disposition not in (None, "inline", "attachment"):
            raise ConfigurationError("presign_content_disposition must be None, 'inline' or 'attachment'.")
        if self.active_content not in ACTIVE_CONTENT_POLICIES:
            raise ConfigurationError(
                f"active_content={self.active_content!r} is invalid: use 'attachment' (the default), 'refuse' or 'inline'."
            )
        if self.object_parameters_hook is not None and not callable(self.object_parameters_hook):
            raise ConfigurationError(
                f"object_parameters_hook={self.object_parameters_hook!r} is invalid: "
                "give a callable (filename, parameters) -> parameters."
            )
