"""Direct browser-to-S3 uploads: the grant, more part URLs, and the finalize step that records the file.

Three signed tokens carry the state, so any web process can serve any step and no table is needed:
the policy (``upload_policy``), the ticket and the ref (``upload_tickets``). Their public names are
importable from here too.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import time
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from . import conf
from .core import contenttypes, direct
from .core.config import parse_tier, parse_visibility
from .core.exceptions import ConflictError, FileTooLargeError, InvalidOptionError, S3StrataError, StorageError
from .core.keys import build_key, unique_suffix
from .core.types import FileVisibility, StorageTier
from .models import PhysicalFile
from .services import get_file_manager
from .upload_policy import (
    UploadPolicy,
    UploadRateLimitedError,
    UploadRejectedError,
    authorize,
    check_file,
    check_type,
    clean_name,
    max_size,
    throttle,
    uploader_key,
)
from .upload_tickets import (
    ABANDON_MARGIN,
    REF_MAX_AGE,
    TICKET_GRACE,
    UploadTicket,
    abandoned_after,
    check_ref,
    load_ref,
    make_ref,
    requester,
)

__all__ = [
    "ABANDON_MARGIN",
    "REF_MAX_AGE",
    "TICKET_GRACE",
    "FinalizedUpload",
    "UploadNotFinishedError",
    "UploadPolicy",
    "UploadRateLimitedError",
    "UploadRejectedError",
    "abandoned_after",
    "authorize",
    "check_file",
    "check_ref",
    "finalize_upload",
    "load_ref",
    "make_ref",
    "requester",
    "sign_parts",
    "start_upload",
]

logger = logging.getLogger(__name__)


class UploadNotFinishedError(S3StrataError):
    """Finalize was called before the object (or all of its parts) reached S3; upload, then finalize again."""


@dataclasses.dataclass(frozen=True)
class FinalizedUpload:
    """A recorded direct upload and the ref that a form submits for it."""

    file: PhysicalFile
    ref: str


def _options() -> dict[str, Any]:
    return conf.get_settings().options


def _parts_answer(sizes: list[int], first: int, urls: list[str]) -> list[dict[str, Any]]:
    return [{"number": number, "size": sizes[number - 1], "url": url} for number, url in enumerate(urls, start=first)]


# -- the grant -------------------------------------------------------------------------------------


def _checked_file(policy: UploadPolicy, filename: Any, size: Any, content_type: Any) -> tuple[str, str, str | None, float]:
    """Return (name, type to store, Content-Disposition, size bound) of a file that ``policy`` admits."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UploadRejectedError(f"size={size!r} is invalid: send the file's length in bytes.")
    limit = max_size(policy)
    if size > limit:
        raise FileTooLargeError(size, limit)
    name = clean_name(filename)
    if content_type:
        try:
            contenttypes.parse_content_type(content_type)
        except InvalidOptionError as exc:
            raise UploadRejectedError(str(exc)) from None
    stored_type, disposition = check_type(policy, name, content_type)
    return name, stored_type, disposition, limit


def _placement(policy: UploadPolicy, name: str) -> tuple[StorageTier, FileVisibility, str, str]:
    """Return (tier, visibility, stored file name, fresh key) of a file named ``name`` under ``policy``."""
    options = _options()
    manager = get_file_manager()
    advanced = manager.config.advanced
    tier = parse_tier(policy.tier or options["STORAGE_TIER"] or advanced.default_storage_tier)
    visibility = parse_visibility(policy.visibility or options["STORAGE_VISIBILITY"] or advanced.default_visibility)
    folder = timezone.now().strftime(policy.upload_to) if policy.upload_to else ""
    basename, suffix = unique_suffix(posixpath.join(folder, name) if folder else name)
    return tier, visibility, basename, build_key(manager.objectstore.tier(tier), visibility, suffix)


def _grant(ticket: UploadTicket, limit: float) -> tuple[UploadTicket, dict[str, Any]]:
    """Sign the upload ``ticket`` describes: return the ticket (with its upload ID when multipart) and the grant."""
    options = _options()
    store = get_file_manager().objectstore
    if ticket.size >= int(options["DIRECT_UPLOAD_MULTIPART_THRESHOLD"]) and ticket.size > 0:
        target = direct.start_multipart(
            store,
            ticket.storage_tier,
            ticket.key,
            size=ticket.size,
            content_type=ticket.content_type,
            content_disposition=ticket.disposition,
            filename=ticket.filename,
            part_size=int(options["DIRECT_UPLOAD_PART_SIZE"]),
            expires_in=ticket.expires_in,
            max_size=limit,
        )
        grant = {
            "method": "multipart",
            "part_size": target.part_size,
            "part_count": len(target.sizes),
            "parts": _parts_answer(target.sizes, 1, target.urls),
        }
        return dataclasses.replace(ticket, upload_id=target.upload_id, part_size=target.part_size), grant
    # One object in one request: a presigned PUT (providers without POST Object) or a POST.
    put = options["DIRECT_UPLOAD_METHOD"] == "put"
    target = (direct.presigned_put if put else direct.presigned_post)(
        store,
        ticket.storage_tier,
        ticket.key,
        size=ticket.size,
        content_type=ticket.content_type,
        content_disposition=ticket.disposition,
        filename=ticket.filename,
        expires_in=ticket.expires_in,
        max_size=limit,
    )
    if put:
        return ticket, {"method": "put", "url": target.url, "headers": target.headers}
    return ticket, {"method": "post", "url": target.url, "fields": target.fields}


def start_upload(request: Any, policy: UploadPolicy, filename: Any, size: Any, content_type: Any = None) -> dict[str, Any]:
    """Authorise, pick a fresh key and return the grant: a presigned POST or PUT, or multipart part URLs, and a ticket.

    Raises PermissionDenied, UploadRateLimitedError, UploadRejectedError, FileTooLargeError or
    InvalidKeyError before anything is signed or written.
    """
    authorize(request, policy)
    throttle(request)
    name, stored_type, disposition, limit = _checked_file(policy, filename, size, content_type)
    tier, visibility, basename, key = _placement(policy, name)
    options = _options()
    ticket = UploadTicket(
        tier=tier.value,
        key=key,
        filename=basename,
        size=size,
        content_type=stored_type,
        disposition=disposition,
        hot_duration=policy.hot_duration if policy.hot_duration is not None else options["STORAGE_HOT_DURATION"],
        user=uploader_key(request),
        policy=policy.digest(),
        expires_in=int(options["DIRECT_UPLOAD_EXPIRES"]),
        granted_at=int(time.time()),
    )
    ticket, grant = _grant(ticket, limit)
    logger.info("s3strata: direct upload granted for s3 key %s (%d bytes, %s) to %s", key, size, stored_type, ticket.user)
    grant.update(
        ticket=ticket.sign(),
        key=key,
        filename=basename,
        content_type=stored_type,
        tier=tier.value,
        visibility=visibility.value,
        expires_in=ticket.expires_in,
    )
    return grant


def sign_parts(request: Any, token: Any, first: Any, last: Any) -> dict[str, Any]:
    """Return signed PUT URLs for parts ``first``..``last`` of a granted multipart upload (a batch at a time).

    URLs expire with the grant's lifetime, and never after the ticket does.
    """
    ticket = UploadTicket.load(request, token)
    if not ticket.upload_id:
        raise UploadRejectedError("This upload is a single POST or PUT: it has no parts to sign.")
    sizes = ticket.part_sizes()
    expires = min(int(_options()["DIRECT_UPLOAD_EXPIRES"]), ticket.seconds_left())
    if expires < 1:
        raise UploadRejectedError("The upload ticket has expired: start the upload again.")
    store = get_file_manager().objectstore
    try:
        urls = direct.sign_parts(store, ticket.storage_tier, ticket.key, ticket.upload_id, sizes, first, last, expires)
    except InvalidOptionError as exc:
        raise UploadRejectedError(str(exc)) from None
    return {"part_size": sizes[0], "part_count": len(sizes), "parts": _parts_answer(sizes, first, urls)}


# -- finalize --------------------------------------------------------------------------------------


def _refuse(tier: StorageTier, key: str, why: str) -> UploadRejectedError:
    """Remove an object that broke its grant and return the error to raise.

    Under the key's claim and only while no row points at it: a concurrent finalize of the same
    ticket may have recorded it meanwhile.
    """
    get_file_manager().sync.delete_object(tier, key, wait=None)
    logger.warning("s3strata: removed direct upload s3 key %s: %s", key, why)
    return UploadRejectedError(f"The uploaded object was removed: {why}")


def _check_landed(ticket: UploadTicket) -> None:
    """Complete a multipart upload, then check that the object landed as granted (removing it if not)."""
    tier, key = ticket.storage_tier, ticket.key
    store = get_file_manager().objectstore
    if ticket.upload_id:
        try:
            direct.complete_multipart(store, tier, key, ticket.upload_id, ticket.part_sizes())
        except StorageError as exc:
            if exc.code == "IncompleteUpload":
                raise UploadNotFinishedError(str(exc)) from exc
            # NoSuchUpload: completed by an earlier finalize that failed afterwards; the HEAD decides.
            if exc.code != "NoSuchUpload":
                raise
    landed = direct.head(store, tier, key)
    if landed is None:
        raise UploadNotFinishedError(f"Nothing has been uploaded to {key!r} yet: upload the file, then finalize.")
    if landed.size != ticket.size:
        raise _refuse(tier, key, f"it has {landed.size} bytes where {ticket.size} were granted.")
    # The media type decides; the grant also pins a text type's charset (contenttypes.header_type), which
    # grants from before it did not.
    if (landed.content_type or "").split(";", 1)[0].strip().lower() != ticket.content_type:
        raise _refuse(tier, key, f"its type {landed.content_type!r} is not the granted {ticket.content_type!r}.")
    if ticket.disposition and landed.content_disposition != ticket.disposition:
        raise _refuse(tier, key, f"it lacks the granted Content-Disposition {ticket.disposition!r}.")
    if not ticket.upload_id:
        # A POST or PUT carries no tags (a multipart upload got them when it started): set them now.
        direct.apply_tags(store, tier, key, ticket.content_type, ticket.disposition, ticket.filename)


def _adopt(tier: StorageTier, key: str, filename: str, hot_until: datetime | None) -> PhysicalFile:
    """Record the object at ``key``; raise ConflictError when it is not an orphan that can be adopted now."""
    # Waits for a concurrent finalize of the same ticket (it holds the key's claim) to record it.
    record: PhysicalFile | None = get_file_manager().sync.adopt_object(tier, key, filename, hot_until, wait=None)  # type: ignore[assignment]
    if record is None:
        raise ConflictError(None, key, f"{key!r} in {tier.value} is not an orphan that can be adopted now.")
    return record


def _record(ticket: UploadTicket) -> PhysicalFile:
    """Return the row of the landed object, made here or by a concurrent finalize of the same ticket."""
    tier, key = ticket.storage_tier, ticket.key
    recorded = PhysicalFile.objects.filter(storage_tier=tier.value, path=key)
    seconds = ticket.hot_duration
    hot_until = timezone.now() + timedelta(seconds=seconds) if tier is StorageTier.HOT and seconds is not None else None
    try:
        record = _adopt(tier, key, ticket.filename, hot_until)
    except ConflictError:
        # Another finalize of this ticket recorded it first: that row is the answer.
        winner = recorded.order_by("pk").first()
        if winner is None:
            raise
        return winner
    # Two finalizes of one ticket can race past the check before: both keep the oldest row, and the
    # other's creator removes its row only (the object is shared, so it must stay).
    oldest = recorded.order_by("pk").first()
    if oldest is not None and oldest.pk != record.pk:
        PhysicalFile.objects.filter(pk=record.pk).delete()
        return oldest
    logger.info("s3strata: direct upload recorded as file %s at s3 key %s", record.pk, key)
    return record


def finalize_upload(request: Any, token: Any) -> FinalizedUpload:
    """Check that the granted object landed as granted, record it, and return its PhysicalFile and ref.

    Idempotent: finalizing the same ticket again returns the same row. An object that breaks its
    grant (size, type or disposition) is deleted and UploadRejectedError raised; one that has not
    arrived yet raises UploadNotFinishedError and can be finalized later.
    """
    ticket = UploadTicket.load(request, token)
    record = PhysicalFile.objects.filter(storage_tier=ticket.tier, path=ticket.key).first()
    if record is None:
        _check_landed(ticket)
        record = _record(ticket)
    return FinalizedUpload(record, make_ref(record, owner=ticket.user, policy=ticket.policy))
