"""The framework-free core of django-s3strata: upstream s3strata's API on boto3. Imports no Django."""

from __future__ import annotations

from .adapters import AdapterFeatures, LoopBridgeAdapter, StorageAdapter, SyncBackedAdapter, SyncStorageAdapter
from .config import S3StrataAdvancedOptions, S3StrataConfig, S3TierConfig
from .exceptions import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigurationError,
    ConflictError,
    FileTooLargeError,
    InvalidKeyError,
    InvalidOptionError,
    ObjectNotFoundError,
    S3StrataError,
    StorageError,
    VerificationError,
)
from .layout import Layout
from .manager import FileManager, SyncFileManager
from .memory import InMemoryAdapter
from .orphans import OrphanOutcome, OrphanPolicy
from .types import (
    UNSET,
    AdoptOrphanOptions,
    AdoptOrphanResult,
    AllBucketObjects,
    BucketObjects,
    DeleteOrphanOptions,
    DeleteOrphanResult,
    FileVisibility,
    GetUrlOptions,
    OrphanObject,
    PhysicalFile,
    S3Object,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)

__all__ = [
    "UNSET",
    "AccessDeniedError",
    "AdapterFeatures",
    "AdoptOrphanOptions",
    "AdoptOrphanResult",
    "AllBucketObjects",
    "BucketNotFoundError",
    "BucketObjects",
    "ConfigurationError",
    "ConflictError",
    "DeleteOrphanOptions",
    "DeleteOrphanResult",
    "FileManager",
    "FileTooLargeError",
    "FileVisibility",
    "GetUrlOptions",
    "InMemoryAdapter",
    "InvalidKeyError",
    "InvalidOptionError",
    "Layout",
    "LoopBridgeAdapter",
    "ObjectNotFoundError",
    "OrphanObject",
    "OrphanOutcome",
    "OrphanPolicy",
    "PhysicalFile",
    "S3Object",
    "S3StrataAdvancedOptions",
    "S3StrataConfig",
    "S3StrataError",
    "S3TierConfig",
    "SetHotDurationOptions",
    "SetTierOptions",
    "SetVisibilityOptions",
    "StorageAdapter",
    "StorageError",
    "StorageTier",
    "SyncBackedAdapter",
    "SyncFileManager",
    "SyncStorageAdapter",
    "UploadOptions",
    "VerificationError",
]
