"""The PhysicalFile model: s3strata's record, with a Django API over the process-wide FileManager."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import IO, Any

import django
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf, links
from .core.restore import ArchiveState, RestoreResult, RestoreStatus, recorded_status
from .core.types import (
    FileVisibility,
    GetUrlOptions,
    RestoreOptions,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
)
from .querysets import PhysicalFileQuerySet, file_manager

#: The restore columns (``core.types.RestoreFields``), cleared by every committed tier move.
RESTORE_FIELDS = ("archive_state", "restore_expires", "restore_requested_at", "restore_move_to", "restore_hot_duration")

# Read at import time: a model's table is fixed when its class is built.
SHARED_TABLE = bool(conf.default_block(getattr(settings, "S3STRATA", None)).get("SHARED_TABLE", False))


class StorageTierField(models.CharField):  # type: ignore[type-arg]
    """The tier column: VARCHAR here, the ``"StorageTier"`` enum on a PostgreSQL table shared with Prisma."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 4)
        kwargs.setdefault("choices", [(t.value, t.value) for t in StorageTier])
        super().__init__(*args, **kwargs)

    def db_type(self, connection: Any) -> str | None:
        if SHARED_TABLE and connection.vendor == "postgresql":
            return '"StorageTier"'
        return super().db_type(connection)

    @staticmethod
    def _placeholder(connection: Any) -> str:
        return '%s::"StorageTier"' if SHARED_TABLE and connection.vendor == "postgresql" else "%s"

    if django.VERSION >= (6, 1):

        def get_placeholder_sql(self, value: Any, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
            placeholder = self._placeholder(connection)
            if hasattr(value, "as_sql"):
                sql, params = compiler.compile(value)
                return placeholder % sql, tuple(params)
            return placeholder, (value,)

    else:

        def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
            return self._placeholder(connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        return None if value is None else str(value)


class UTCDateTimeField(models.DateTimeField):  # type: ignore[type-arg]
    """Aware datetimes here; on a table shared with Prisma, ``timestamp(3) without time zone`` holding UTC."""

    def db_type(self, connection: Any) -> str | None:
        if SHARED_TABLE and connection.vendor == "postgresql":
            return "timestamp(3) without time zone"
        return super().db_type(connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is not None and timezone.is_naive(value) and settings.USE_TZ:
            return timezone.make_aware(value, UTC)
        return value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        value = super().get_db_prep_value(value, connection, prepared)
        if SHARED_TABLE and connection.vendor == "postgresql" and isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


class PhysicalFile(models.Model):
    """One stored object: its tier, its key (``path``) and when it leaves the HOT tier."""

    storage_tier = StorageTierField(_("storage tier"), default=StorageTier.HOT.value)
    filename = models.TextField(_("filename"))
    path = models.TextField(_("path"))
    hot_until = UTCDateTimeField(_("hot until"), null=True, blank=True)
    created_at = UTCDateTimeField(_("created at"), default=timezone.now)
    updated_at = UTCDateTimeField(_("updated at"), default=timezone.now)
    # Beyond s3strata's schema, nullable so rows written by s3strata-ts stay valid.
    size = models.BigIntegerField(_("size"), null=True, blank=True)
    content_type = models.TextField(_("content type"), null=True, blank=True)
    # The ETag S3 gave the object when it was stored: moves copy pinned to it without a HEAD first.
    etag = models.TextField(_("ETag"), null=True, blank=True, editable=False)
    # An archival worker's claim: no other worker moves the file until ``lease_until``.
    lease_owner = models.TextField(_("lease owner"), null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True, editable=False)
    # The deep archive (docs/archive.md): what is known of the object's restore, so that list pages
    # need no S3 request. ``archive_state`` None: as the tier's storage class implies.
    archive_state = models.TextField(_("archive state"), null=True, blank=True, editable=False)
    restore_expires = models.DateTimeField(_("restored until"), null=True, blank=True, editable=False)
    restore_requested_at = models.DateTimeField(_("restore requested at"), null=True, blank=True, editable=False)
    # A move waiting for the restore (to "HOT"), and the hot duration in seconds it then sets.
    restore_move_to = models.TextField(_("move after restore"), null=True, blank=True, editable=False)
    restore_hot_duration = models.BigIntegerField(_("hot duration after restore"), null=True, blank=True, editable=False)
    # Which ``S3STRATA`` configuration (bucket pair) holds the object; NULL is "default", so rows
    # written by s3strata-ts, which knows no configurations, belong to the default one.
    config = models.TextField(_("configuration"), null=True, blank=True, editable=False)

    objects = PhysicalFileQuerySet.as_manager()

    class Meta:
        db_table = "PhysicalFile" if SHARED_TABLE else "s3strata_physicalfile"
        verbose_name = _("physical file")
        verbose_name_plural = _("physical files")
        ordering = ["-id"]
        # On a shared table the (storage_tier, hot_until) index is Prisma's own,
        # "PhysicalFile_storage_tier_hot_until_idx" (made by Prisma or by migration 0001).
        indexes = [
            *([] if SHARED_TABLE else [models.Index(fields=["storage_tier", "hot_until"], name="s3strata_tier_hot_until_idx")]),
            models.Index(fields=["path"], name="s3strata_path_idx"),
        ]
        permissions = [
            ("change_tier_physicalfile", "Can move files between HOT and COLD"),
            ("change_visibility_physicalfile", "Can make files public or private"),
            ("manage_orphans_physicalfile", "Can list, adopt and delete orphan objects"),
        ]

    def __str__(self) -> str:
        return self.filename

    # -- reading ---------------------------------------------------------------------

    @property
    def config_name(self) -> str:
        """Return the name of the configuration this file belongs to (``"default"`` for NULL)."""
        return self.config or conf.DEFAULT

    @property
    def tier(self) -> StorageTier:
        """Return the storage tier as an enum."""
        return StorageTier(self.storage_tier)

    @property
    def visibility(self) -> FileVisibility:
        """Return PUBLIC or PRIVATE, read from the path by the tier's configured prefixes (no FileManager)."""
        return conf.get_settings(self.config).layout.location(self)[1]  # type: ignore[arg-type]

    #: What ``url`` returns: ``"direct"`` (the object's own URL), ``"view"`` or ``"signed"`` (the
    #: download view's, by id or by token: it survives moves). A ``PhysicalFileField(url_mode=...)``
    #: sets it on the files it hands out.
    url_mode = "direct"

    @property
    def url(self) -> str:
        """Return the direct URL (PUBLIC) or a presigned URL (PRIVATE), or the download view's per ``url_mode``; no S3 request."""
        if self.url_mode != "direct":
            return self.download_url(signed=self.url_mode == "signed")
        return self.get_url()

    def download_url(self, *, signed: bool = False, expires_in: int | None = None, disposition: str | None = None) -> str:
        """Return the download view's path for this file, which survives moves (no query, no S3 request).

        By id, the view asks ``DOWNLOAD_AUTHORIZE`` who may follow it; ``signed`` gives a token
        instead, which lets anyone holding it download (for ``expires_in`` seconds when given).
        """
        return links.view_url(self.pk, signed=signed, expires_in=expires_in, disposition=disposition)

    def get_url(self, expires_in: int | None = None, content_disposition: str | None = None) -> str:
        """Return the file's URL; ``expires_in`` seconds for a presigned one."""
        return file_manager(self.config).sync.get_url(self, GetUrlOptions(expires_in, content_disposition))  # type: ignore[arg-type]

    def open(self) -> IO[bytes]:
        """Return a seekable binary stream over the object (ranged reads on demand)."""
        return file_manager(self.config).sync.open(self)  # type: ignore[arg-type]

    def exists_in_storage(self) -> bool:
        """Return True when the object exists in its tier's bucket (one HEAD request)."""
        return file_manager(self.config).sync.exists(self)  # type: ignore[arg-type]

    @property
    def is_expired(self) -> bool:
        """Return True for a HOT file whose ``hot_until`` has passed."""
        return self.storage_tier == StorageTier.HOT.value and self.hot_until is not None and self.hot_until <= timezone.now()

    # -- changing ----------------------------------------------------------------------

    def _refresh_from(self, other: Any) -> PhysicalFile:
        for field in ("storage_tier", "path", "hot_until", "updated_at"):
            setattr(self, field, getattr(other, field))
        for field in RESTORE_FIELDS:
            setattr(self, field, getattr(other, field, None))
        return self

    # -- the deep archive (docs/archive.md) ----------------------------------------------

    @property
    def restore_status(self) -> RestoreStatus:
        """Return the archive state the row knows (readable, archived, restoring, restored until): no S3 request."""
        try:
            storage_class = conf.get_settings(self.config).layout.tiers[self.tier].storage_class
        except ValueError:  # a tier this app does not know: nothing to tell
            return RestoreStatus(ArchiveState.READABLE)
        return recorded_status(self, storage_class) or RestoreStatus(ArchiveState.READABLE)  # type: ignore[arg-type]

    @property
    def is_retrievable(self) -> bool:
        """Return True when the object can be read and linked to now (not archived, or restored): no S3 request."""
        return self.restore_status.retrievable

    def restore(self, days: int = 1, retrieval: str = "Standard") -> RestoreResult:
        """Request a restore of this archived file for ``days`` ("Expedited", "Standard" or "Bulk"); idempotent."""
        result = file_manager(self.config).sync.restore(self, RestoreOptions(days, retrieval))  # type: ignore[arg-type]
        self._refresh_from(result.file)
        return result

    def set_tier(
        self, tier: StorageTier | str, *, hot_duration: int | None = None, move_file: bool = True, restore: bool = False
    ) -> PhysicalFile:
        """Move the file to ``tier`` (copy, verify, commit, delete the source).

        Out of an archived object, ``restore=True`` requests its restore and records the move, which
        the ``complete_restores`` task finishes once the restore has (docs/archive.md).
        """
        options = SetTierOptions(tier, move_file, hot_duration, restore)
        updated = file_manager(self.config).sync.set_tier(self, options)  # type: ignore[arg-type]
        return self._refresh_from(updated)

    def set_visibility(self, visibility: FileVisibility | str, *, move_file: bool = True) -> PhysicalFile:
        """Make the file PUBLIC or PRIVATE (moves the object to the other prefix)."""
        updated = file_manager(self.config).sync.set_visibility(self, SetVisibilityOptions(visibility, move_file))  # type: ignore[arg-type]
        return self._refresh_from(updated)

    def set_hot_duration(self, duration: int | None) -> PhysicalFile:
        """Set when this HOT file expires: None never, 0 now, N seconds from now."""
        updated = file_manager(self.config).sync.set_hot_duration(self, SetHotDurationOptions(duration))  # type: ignore[arg-type]
        return self._refresh_from(updated)

    def archive(self) -> PhysicalFile:
        """Move this file to COLD now."""
        return self.set_tier(StorageTier.COLD)

    def delete(self, using: Any = None, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
        """Delete the row, then the object (a leftover object is an orphan the sweep removes)."""
        file_manager(self.config).sync.delete(self)  # type: ignore[arg-type]
        return 1, {self._meta.label: 1}


class ObjectClaim(models.Model):
    """A writer's claim on one object key: no other writer copies to, deletes or adopts it until ``until``.

    Every writer of an object (moves, deletes, archival, the orphan sweep, adoption, verify's
    repair) claims the keys it writes or deletes first and releases them when done; a claim of
    a killed writer expires. The primary key is a digest of (tier, key), which fits a unique
    index on every database whatever the key's length.
    """

    digest = models.CharField(_("digest"), max_length=64, primary_key=True)
    storage_tier = models.CharField(_("storage tier"), max_length=4)
    key = models.TextField(_("key"))
    owner = models.CharField(_("owner"), max_length=255)
    until = models.DateTimeField(_("until"), db_index=True)

    class Meta:
        db_table = "s3strata_objectclaim"
        verbose_name = _("object claim")
        verbose_name_plural = _("object claims")

    def __str__(self) -> str:
        return f"{self.storage_tier} {self.key} ({self.owner})"

    @staticmethod
    def digest_of(storage_tier: str, key: str) -> str:
        """Return the claim id of (tier, key)."""
        return hashlib.sha256(f"{storage_tier}\0{key}".encode()).hexdigest()
