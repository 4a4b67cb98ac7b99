"""Direct browser-to-S3 uploads: signed policies, upload grants, and the finalize step that records the file.

Three signed tokens carry the state, so any web process can serve any step and no table is needed:

- a **policy** (in the form widget's HTML) fixes tier, visibility, hot duration, ``upload_to``,
  content types and size bound; the browser cannot change them;
- a **ticket** (returned by ``start_upload``) fixes the key, size, content type and the user the
  grant was made for; S3 enforces key, size and type through the POST policy or the signed part
  lengths;
- a **ref** (returned by ``finalize_upload``) names the recorded PhysicalFile for the form field.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import posixpath
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core import signing
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.module_loading import import_string

from . import conf
from .core import direct
from .core.config import parse_tier, parse_visibility
from .core.exceptions import FileTooLargeError, InvalidOptionError, S3StrataError, StorageError
from .core.keys import build_key, clean_filename, unique_suffix
from .core.objectstore import guess_content_type
from .core.types import StorageTier
from .models import PhysicalFile
from .services import get_file_manager

__all__ = [
    "UploadNotFinishedError",
    "UploadPolicy",
    "UploadRejectedError",
    "finalize_upload",
    "load_ref",
    "make_ref",
    "start_upload",
]

logger = logging.getLogger(__name__)

_POLICY_SALT = "django_s3strata.uploads.policy"
_TICKET_SALT = "django_s3strata.uploads.ticket"
_REF_SALT = "django_s3strata.uploads.ref"
#: A ref stays usable for a day: long enough for a form left open, short enough to be worthless later.
REF_MAX_AGE = 86400


class UploadRejectedError(InvalidOptionError):
    """A direct upload was refused: a bad or expired token, a type not allowed, or an object that does not match."""


class UploadNotFinishedError(S3StrataError):
    """Finalize was called before the object (or all of its parts) reached S3; upload, then finalize again."""


@dataclasses.dataclass(frozen=True)
class UploadPolicy:
    """What a direct upload may be: where it goes and what it may contain (None: the settings' default)."""

    tier: str | None = None
    visibility: str | None = None
    hot_duration: int | None = None
    upload_to: str = ""
    content_types: tuple[str, ...] | None = None
    max_size: int | None = None

    def sign(self) -> str:
        """Return the policy as a signed token for a page to send back."""
        return signing.dumps(dataclasses.asdict(self), salt=_POLICY_SALT, compress=True)

    @classmethod
    def load(cls, token: str | None) -> UploadPolicy:
        """Return the policy in ``token`` (the defaults when None), or raise UploadRejectedError."""
        if not token:
            return cls()
        try:
            data = signing.loads(token, salt=_POLICY_SALT)
            if data.get("content_types") is not None:
                data["content_types"] = tuple(data["content_types"])
            return cls(**data)
        except (signing.BadSignature, TypeError, AttributeError):
            raise UploadRejectedError("The upload policy is not valid: reload the page and try again.") from None


def _opts() -> dict[str, Any]:
    return conf.get_settings().options


def authorize(request: Any, policy: UploadPolicy) -> None:
    """Raise PermissionDenied unless ``request``'s user may upload under ``policy``."""
    hook: Callable[[Any, UploadPolicy], bool] | str | None = _opts()["DIRECT_UPLOAD_AUTHORIZE"]
    if hook is not None:
        check = import_string(hook) if isinstance(hook, str) else hook
        allowed = bool(check(request, policy))
    else:
        user = getattr(request, "user", None)
        permission = _opts()["DIRECT_UPLOAD_PERMISSION"]
        allowed = bool(user is not None and user.is_authenticated and (permission is None or user.has_perm(permission)))
    if not allowed:
        raise PermissionDenied("You may not upload files here: sign in with an account allowed to upload.")


def _user_key(request: Any) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    # Anonymous uploads (allowed only by a custom hook) are bound to the session instead.
    session = getattr(request, "session", None)
    if session is None:
        return "anonymous"
    if session.session_key is None:
        session.save()
    return f"session:{session.session_key}"


def _allowed(content_type: str, patterns: tuple[str, ...] | list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(content_type, p) for p in patterns)


def _content_types(policy: UploadPolicy) -> tuple[str, ...] | None:
    if policy.content_types is not None:
        return policy.content_types
    configured = _opts()["DIRECT_UPLOAD_CONTENT_TYPES"]
    return tuple(configured) if configured is not None else None


def _max_size(policy: UploadPolicy) -> float:
    limit = get_file_manager().config.advanced.max_file_size
    return min(limit, policy.max_size) if policy.max_size is not None else limit


def start_upload(request: Any, policy: UploadPolicy, filename: Any, size: Any, content_type: Any = None) -> dict[str, Any]:
    """Authorise, pick a fresh key and return the grant: a presigned POST or multipart part URLs, and a ticket.

    Raises PermissionDenied, UploadRejectedError, FileTooLargeError or InvalidKeyError before
    anything is signed.
    """
    authorize(request, policy)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UploadRejectedError(f"size={size!r} is invalid: send the file's length in bytes.")
    limit = _max_size(policy)
    if size > limit:
        raise FileTooLargeError(size, limit)
    name = clean_filename(str(filename) if filename is not None else "")
    name = posixpath.basename(name.replace("\\", "/")) or "file"
    ctype = str(content_type) if content_type else guess_content_type(name)
    patterns = _content_types(policy)
    if not _allowed(ctype, patterns):
        raise UploadRejectedError(f"Files of type {ctype!r} are not accepted here; allowed: {', '.join(patterns or ())}.")
    opts = _opts()
    manager = get_file_manager()
    adv = manager.config.advanced
    tier = parse_tier(policy.tier or opts["STORAGE_TIER"] or adv.default_storage_tier)
    visibility = parse_visibility(policy.visibility or opts["STORAGE_VISIBILITY"] or adv.default_visibility)
    folder = timezone.now().strftime(policy.upload_to) if policy.upload_to else ""
    basename, suffix = unique_suffix(posixpath.join(folder, name) if folder else name)
    key = build_key(manager.objectstore.tier(tier), visibility, suffix)
    expires = int(opts["DIRECT_UPLOAD_EXPIRES"])
    ticket: dict[str, Any] = {
        "t": tier.value,
        "k": key,
        "f": basename,
        "s": size,
        "c": ctype,
        "h": policy.hot_duration if policy.hot_duration is not None else opts["STORAGE_HOT_DURATION"],
        "u": _user_key(request),
        "ct": list(patterns) if patterns is not None else None,
        "x": expires,
    }
    grant: dict[str, Any]
    if size >= int(opts["DIRECT_UPLOAD_MULTIPART_THRESHOLD"]) and size > 0:
        target = direct.start_multipart(
            manager.objectstore,
            tier,
            key,
            size=size,
            content_type=ctype,
            part_size=int(opts["DIRECT_UPLOAD_PART_SIZE"]),
            expires_in=expires,
            max_size=limit,
        )
        ticket["m"], ticket["p"] = target.upload_id, target.sizes
        grant = {
            "method": "multipart",
            "part_size": target.part_size,
            "parts": [
                {"number": n, "size": length, "url": url}
                for n, (length, url) in enumerate(zip(target.sizes, target.urls, strict=True), start=1)
            ],
        }
    else:
        post = direct.presigned_post(
            manager.objectstore, tier, key, size=size, content_type=ctype, expires_in=expires, max_size=limit
        )
        grant = {"method": "post", "url": post.url, "fields": post.fields}
    logger.info("s3strata: direct upload granted for s3 key %s (%d bytes, %s) to %s", key, size, ctype, ticket["u"])
    grant.update(
        ticket=signing.dumps(ticket, salt=_TICKET_SALT, compress=True),
        key=key,
        filename=basename,
        tier=tier.value,
        visibility=visibility.value,
        expires_in=expires,
    )
    return grant


def _load_ticket(request: Any, token: Any) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise UploadRejectedError("ticket is missing: send the ticket that starting the upload returned.")
    try:
        # The grant's own lifetime, plus an hour for a large upload that began just before it expired.
        ticket: dict[str, Any] = signing.loads(token, salt=_TICKET_SALT, max_age=_opts()["DIRECT_UPLOAD_EXPIRES"] + 3600)
    except signing.SignatureExpired:
        raise UploadRejectedError("The upload ticket has expired: start the upload again.") from None
    except signing.BadSignature:
        raise UploadRejectedError("The upload ticket is not valid: send the ticket that starting the upload returned.") from None
    if ticket.get("u") != _user_key(request):
        raise PermissionDenied("This upload was granted to someone else.")
    return ticket


def _refuse(tier: StorageTier, key: str, why: str) -> UploadRejectedError:
    """Remove an object that broke its grant and return the error to raise."""
    get_file_manager().objectstore.delete(tier, key)
    logger.warning("s3strata: removed direct upload s3 key %s: %s", key, why)
    return UploadRejectedError(f"The uploaded object was removed: {why}")


def finalize_upload(request: Any, token: Any) -> PhysicalFile:
    """Check that the granted object landed as granted, record it, and return its PhysicalFile.

    Idempotent: finalizing the same ticket again returns the same row. An object that breaks its
    grant (size or type) is deleted and UploadRejectedError raised; one that has not arrived yet
    raises UploadNotFinishedError and can be finalized later.
    """
    ticket = _load_ticket(request, token)
    tier, key = StorageTier(ticket["t"]), str(ticket["k"])
    existing = PhysicalFile.objects.filter(storage_tier=tier.value, path=key).first()
    if existing is not None:
        return existing
    store = get_file_manager().objectstore
    if ticket.get("m"):
        try:
            direct.complete_multipart(store, tier, key, ticket["m"], list(ticket["p"]))
        except StorageError as exc:
            if exc.code == "IncompleteUpload":
                raise UploadNotFinishedError(str(exc)) from exc
            # NoSuchUpload: completed by an earlier finalize that failed afterwards; the HEAD decides.
            if exc.code != "NoSuchUpload":
                raise
    info = store.head(tier, key)
    if info is None:
        raise UploadNotFinishedError(f"Nothing has been uploaded to {key!r} yet: upload the file, then finalize.")
    if info.size != ticket["s"]:
        raise _refuse(tier, key, f"it has {info.size} bytes where {ticket['s']} were granted.")
    if not _allowed(info.content_type or "", ticket.get("ct")):
        raise _refuse(tier, key, f"its type {info.content_type!r} is not accepted here.")
    seconds = ticket.get("h")
    hot_until = timezone.now() + timedelta(seconds=seconds) if tier is StorageTier.HOT and seconds is not None else None
    from .operations import adopt_object

    record = adopt_object(
        tier, key, info.size, info.content_type or ticket["c"], filename=ticket["f"], hot_until=hot_until, etag=info.etag
    )
    # Two finalizes of one ticket can race past the check above: both keep the oldest row, and the
    # other's creator removes its row only (the object is shared, so it must stay).
    first = PhysicalFile.objects.filter(storage_tier=tier.value, path=key).order_by("pk").first()
    if first is not None and first.pk != record.pk:
        PhysicalFile.objects.filter(pk=record.pk).delete()
        return first
    logger.info("s3strata: direct upload recorded as file %s at s3 key %s", record.pk, key)
    return record


def make_ref(record: PhysicalFile) -> str:
    """Return a signed reference to ``record`` for a form to submit in place of the file."""
    return signing.dumps(record.pk, salt=_REF_SALT)


def load_ref(ref: str) -> PhysicalFile:
    """Return the PhysicalFile a ref names, or raise UploadRejectedError."""
    try:
        pk = signing.loads(ref, salt=_REF_SALT, max_age=REF_MAX_AGE)
    except signing.BadSignature:
        raise UploadRejectedError("The uploaded file's reference is not valid or has expired: upload the file again.") from None
    record = PhysicalFile.objects.filter(pk=pk).first()
    if record is None:
        raise UploadRejectedError("The uploaded file no longer exists: upload it again.")
    return record
