"""Every operation's steps, composed: moves, archival and orphans from their modules, plus uploads and URLs.

Both faces of FileManager (``manager.py``) drive the same Operations object.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

from .archival import ArchiveOps
from .claims import seconds
from .config import parse_tier, parse_visibility
from .contenttypes import parse_content_type, write_disposition
from .keys import build_key, clean_filename, default_suffix, validate_suffix
from .objectstore import DataSource, content_disposition, guess_content_type
from .orphans import OrphanOps
from .restore import RestoreOps
from .steps import BULK_BYTES, Op, S3Call, now
from .types import FileVisibility, GetUrlOptions, ObjectInfo, PhysicalFile, StorageTier, UploadOptions

__all__ = ["Operations"]


def _payload_size(data: Any) -> int | None:
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    if isinstance(data, os.PathLike):
        try:
            return os.path.getsize(data)
        except OSError:
            return None
    return None


class Operations(RestoreOps, ArchiveOps, OrphanOps):
    """Every operation as a step generator; shared by both faces."""

    def url(self, file: PhysicalFile, options: GetUrlOptions | None) -> str:
        """Return the public URL or a presigned URL; no network, no thread hop."""
        self.refuse_archived(file, "GetUrl")  # a URL to an archived object would only answer 403
        tier, visibility, _ = self._location(file)
        opts = options or GetUrlOptions()
        if visibility is FileVisibility.PUBLIC and not opts.presign:
            return self.store.public_url(tier, file.path)
        expires = opts.expires_in if opts.expires_in is not None else self.advanced.default_presigned_url_expiration
        disposition = opts.content_disposition
        if disposition is None and self.advanced.presign_content_disposition:
            disposition = content_disposition(self.advanced.presign_content_disposition, file.filename)
        return self.store.presigned_url(tier, file.path, expires, disposition)

    # -- upload --------------------------------------------------------------------

    def upload(self, data: DataSource, options: UploadOptions | None) -> Op[PhysicalFile]:
        opts = options or UploadOptions()
        tier = parse_tier(opts.tier if opts.tier is not None else self.advanced.default_storage_tier)
        visibility = parse_visibility(opts.visibility if opts.visibility is not None else self.advanced.default_visibility)
        duration = seconds(opts.hot_duration, "hot_duration")
        filename = clean_filename(opts.filename) if opts.filename is not None else str(uuid.uuid4())
        suffix = validate_suffix(opts.path_suffix) if opts.path_suffix is not None else default_suffix(filename)
        key = build_key(self.store.tier(tier), visibility, suffix)
        # Checked before any byte is sent: one strict type, and active content per the settings.
        content_type = parse_content_type(opts.content_type) if opts.content_type else guess_content_type(filename)
        disposition = write_disposition(content_type, filename, self.advanced.active_content)
        size = _payload_size(data)
        stored: ObjectInfo = yield S3Call(
            self.store.put,
            (tier, key, data),
            {
                "content_type": content_type,
                "content_disposition": disposition,
                "max_size": self.advanced.max_file_size,
                "filename": filename,
            },
            bulk=size is None or size > BULK_BYTES,
        )
        hot_until = now() + timedelta(seconds=duration) if tier is StorageTier.HOT and duration is not None else None
        try:
            record = yield from self._create(tier, filename, key, hot_until, stored)
        except Exception:
            # Only remove the object when no record can be pointing at it (a create may commit and still raise).
            if (yield from self._no_record_at(tier, key)):
                yield from self._discard(tier, key, "its record was not created")
            raise
        return record

    def exists(self, file: PhysicalFile) -> Op[bool]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        info = yield S3Call(self.store.head, (tier, file.path))
        return info is not None
