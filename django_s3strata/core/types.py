"""Enums, the PhysicalFile record, and the option and result types of the s3strata API."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypedDict

__all__ = [
    "UNSET",
    "AdoptOrphanOptions",
    "AdoptOrphanResult",
    "AllBucketObjects",
    "BucketObjects",
    "DeleteOrphanOptions",
    "DeleteOrphanResult",
    "FileId",
    "FileVisibility",
    "GetUrlOptions",
    "ObjectInfo",
    "OrphanObject",
    "PhysicalFile",
    "RestoreFields",
    "RestoreOptions",
    "S3Object",
    "SetHotDurationOptions",
    "SetTierOptions",
    "SetVisibilityOptions",
    "StorageTier",
    "TierLike",
    "UploadOptions",
    "VisibilityLike",
]


class StorageTier(enum.StrEnum):
    """Where a file lives: HOT (fast, costly) or COLD (cheap archive)."""

    HOT = "HOT"
    COLD = "COLD"


class FileVisibility(enum.StrEnum):
    """How a file is served: PUBLIC by a direct URL, PRIVATE by a presigned URL."""

    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


FileId = str | int
TierLike = StorageTier | Literal["HOT", "COLD"] | str
VisibilityLike = FileVisibility | Literal["PUBLIC", "PRIVATE"] | str
ErrorEntry = dict[str, str]


class _Unset(enum.Enum):
    """The type of UNSET: a value that says "not given" where None is a real value."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Marks an argument of ``StorageAdapter.update`` as "leave unchanged"; None clears.
UNSET: Final = _Unset.UNSET


@dataclass
class PhysicalFile:
    """The database record of one stored object (the same shape as s3strata's)."""

    id: FileId
    storage_tier: StorageTier | str
    filename: str
    path: str
    hot_until: datetime | None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class UploadOptions:
    """Options for ``FileManager.upload``."""

    tier: StorageTier | str | None = None
    visibility: FileVisibility | str | None = None
    filename: str | None = None
    path_suffix: str | None = None
    hot_duration: int | None = None  # seconds
    content_type: str | None = None  # guessed from the filename when None


@dataclass
class GetUrlOptions:
    """Options for ``FileManager.get_url``."""

    expires_in: int | None = None  # seconds; PRIVATE files only, or PUBLIC ones with ``presign``
    #: ``Content-Disposition`` for the presigned response; overrides the configured default.
    content_disposition: str | None = None
    #: Presign a PUBLIC file's URL too, so that the response can carry ``content_disposition``.
    presign: bool = False


@dataclass
class SetVisibilityOptions:
    """Options for ``FileManager.set_visibility``."""

    visibility: FileVisibility | str
    move_file: bool = True


@dataclass
class SetTierOptions:
    """Options for ``FileManager.set_tier``."""

    tier: StorageTier | str
    move_file: bool = True
    hot_duration: int | None = None  # seconds; only when moving to HOT
    #: Moving an archived object (GLACIER, DEEP_ARCHIVE) to HOT: request its restore and record the
    #: pending move instead of failing (True: the default RestoreOptions; docs/archive.md).
    restore: bool | RestoreOptions = False


@dataclass
class SetHotDurationOptions:
    """Options for ``FileManager.set_hot_duration``: None clears, 0 expires now, N is now + N s."""

    duration: int | None


@dataclass(slots=True)
class S3Object:
    """One object as a bucket listing shows it (slotted: a scan of a large bucket holds many)."""

    key: str
    last_modified: datetime | None = None
    size: int | None = None
    etag: str | None = None
    storage_class: str | None = None


@dataclass(slots=True)
class OrphanObject(S3Object):
    """An object with no record of its tier and path."""

    tier: StorageTier = StorageTier.HOT
    bucket: str = ""


@dataclass
class ObjectInfo:
    """What a HEAD request (or a write's answer) tells about one object."""

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    content_type: str | None = None
    storage_class: str | None = None
    #: True when S3's answer shows the ETag is the content's MD5 (one part, neither SSE-KMS nor SSE-C),
    #: False when it shows it is not, None when unknown (an ObjectInfo built from a record).
    etag_md5: bool | None = None
    #: Full-object checksums S3 reported, by algorithm (``{"SHA256": "<base64>"}``).
    checksums: dict[str, str] = field(default_factory=dict)
    #: The server-side encryption S3 reported ("AES256", "aws:kms", ...).
    encryption: str | None = None
    #: The object parameters a HEAD reported (CacheControl, ContentDisposition, ContentEncoding,
    #: ContentLanguage, Expires, Metadata): what a copy between endpoints carries over.
    parameters: dict[str, Any] = field(default_factory=dict)
    #: How many tags the object has (a HEAD's ``x-amz-tagging-count``); None when not reported.
    tag_count: int | None = None
    #: A HEAD's ``x-amz-restore`` (``ongoing-request="false", expiry-date="..."``); None when never restored.
    restore: str | None = None
    #: A HEAD's ``x-amz-archive-status`` (Intelligent-Tiering's ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS).
    archive_status: str | None = None


@dataclass
class BucketObjects:
    """The objects of one tier's bucket."""

    tier: StorageTier
    bucket: str
    objects: list[S3Object]
    count: int


@dataclass
class AllBucketObjects:
    """The objects of both tiers."""

    hot: BucketObjects
    cold: BucketObjects
    total_count: int
    collected_at: datetime


@dataclass
class DeleteOrphanOptions:
    """Options for ``FileManager.delete_orphan_objects``."""

    prefix: str | None = None
    tier: StorageTier | str | None = None
    dry_run: bool = False
    #: Leave alone objects younger than this many seconds (uploads still in flight).
    grace_period: int | None = None


@dataclass
class DeleteOrphanResult:
    """What ``delete_orphan_objects`` did."""

    deleted: int
    failed: int
    deleted_paths: list[str]
    errors: list[ErrorEntry]
    dry_run: bool


@dataclass
class AdoptOrphanOptions:
    """Options for ``FileManager.adopt_orphan_objects``."""

    prefix: str | None = None
    tier: StorageTier | str | None = None
    extract_filename: Callable[[str], str] | None = None
    set_hot_until: bool = False
    hot_duration: int | None = None  # seconds
    #: Leave alone objects younger than this many seconds (uploads still in flight).
    grace_period: int | None = None


@dataclass
class AdoptOrphanResult:
    """What ``adopt_orphan_objects`` did."""

    adopted: int
    failed: int
    adopted_file_ids: list[FileId]
    errors: list[ErrorEntry] = field(default_factory=list)


@dataclass
class RestoreOptions:
    """Options for ``FileManager.restore``: how long the restored copy stays, and how fast S3 retrieves it."""

    #: Days the temporary copy stays readable (1 to 365), counted by S3 from when the restore completes.
    days: int = 1
    #: "Expedited" (minutes; GLACIER only), "Standard" (hours) or "Bulk" (cheapest, slowest).
    retrieval: Literal["Expedited", "Standard", "Bulk"] | str = "Standard"


class RestoreFields(TypedDict, total=False):
    """What a record keeps of an archived object's restore (``StorageAdapter.record_restore``); None clears."""

    #: "ARCHIVED", "RESTORING", "RESTORED" or "READABLE"; None: as the tier's storage class implies.
    archive_state: str | None
    restore_expires: datetime | None
    restore_requested_at: datetime | None
    #: A move waiting for the restore ("HOT"), and the hot duration (seconds) it then sets.
    restore_move_to: str | None
    restore_hot_duration: int | None
