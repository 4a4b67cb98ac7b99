"""Direct browser-to-S3 uploads: signed policies, upload grants, and the finalize step that records the file.

Three signed tokens carry the state, so any web process can serve any step and no table is needed:

- a **policy** (in the form widget's HTML) fixes tier, visibility, hot duration, ``upload_to``,
  content types and size bound; the browser cannot change them;
- a **ticket** (returned by ``start_upload``) fixes the key, size, content type, disposition, the
  policy's digest and the user the grant was made for; S3 enforces key, size, type and
  disposition through the POST policy or the signed part lengths;
- a **ref** (returned by ``finalize_upload``) names the recorded PhysicalFile, the policy it was
  uploaded under and its uploader; a form field accepts it only under the same policy, from the
  same user (``check_ref``).

The user is named as ``user:<pk>``, or for anonymous uploads by a salted HMAC of the session key:
tickets and refs are readable by page script, and the session key must stay HttpOnly.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from . import conf
from .core import contenttypes, direct
from .core.config import parse_tier, parse_visibility
from .core.exceptions import ConflictError, FileTooLargeError, InvalidOptionError, S3StrataError, StorageError
from .core.keys import build_key, clean_filename, unique_suffix
from .core.types import StorageTier
from .models import PhysicalFile
from .services import get_file_manager

__all__ = [
    "FinalizedUpload",
    "UploadNotFinishedError",
    "UploadPolicy",
    "UploadRateLimitedError",
    "UploadRejectedError",
    "abandoned_after",
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

_POLICY_SALT = "django_s3strata.uploads.policy"
_TICKET_SALT = "django_s3strata.uploads.ticket"
_REF_SALT = "django_s3strata.uploads.ref"
_SESSION_SALT = "django_s3strata.uploads.session"
_RATE_SALT = "django_s3strata.uploads.rate"
#: A ref stays usable for a day: long enough for a form left open, short enough to be worthless later.
REF_MAX_AGE = 86400
#: A ticket outlives its grant by this much: a large upload that began just before the grant
#: expired can still get part URLs and be finalized.
TICKET_GRACE = 3600
#: Unfinished multipart uploads are aborted this long after their ticket expired (clock skew,
#: a sweep running while the last part lands).
ABANDON_MARGIN = 3600


class UploadRejectedError(InvalidOptionError):
    """A direct upload was refused: a bad or expired token, a type not allowed, or an object that does not match."""


class UploadRateLimitedError(UploadRejectedError):
    """Too many uploads were started by this user lately; ``retry_after`` says when to try again (seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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

    def __post_init__(self) -> None:
        if self.content_types is not None:
            if isinstance(self.content_types, str):
                raise InvalidOptionError("content_types must be a tuple of patterns such as ('image/*',), not a string.")
            object.__setattr__(self, "content_types", tuple(contenttypes.parse_pattern(p) for p in self.content_types))
        size = self.max_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidOptionError(f"max_size={self.max_size!r} is invalid: give whole bytes, or None for the settings' bound.")

    def sign(self) -> str:
        """Return the policy as a signed token for a page to send back."""
        return signing.dumps(dataclasses.asdict(self), salt=_POLICY_SALT, compress=True)

    def digest(self) -> str:
        """Return a short digest that names this policy in tickets and refs."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

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
        except (signing.BadSignature, TypeError, AttributeError, InvalidOptionError):
            raise UploadRejectedError("The upload policy is not valid: reload the page and try again.") from None


@dataclasses.dataclass(frozen=True)
class FinalizedUpload:
    """A recorded direct upload and the ref that a form submits for it."""

    file: PhysicalFile
    ref: str


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
    # Anonymous uploads (allowed only by a custom hook) are bound to the session instead, by a
    # keyed hash: the ticket is readable by page script, and the session key is a credential.
    session = getattr(request, "session", None)
    if session is None:
        return "anonymous"
    if session.session_key is None:
        session.save()
    digest = salted_hmac(_SESSION_SALT, session.session_key, algorithm="sha256").hexdigest()
    return f"session:{digest}"


# -- who is asking, for form fields (which see no request) ------------------------------------------

# Looked up only when a ref is checked: most requests never need the user, nor an anonymous session.
_requester: contextvars.ContextVar[Callable[[], str] | None] = contextvars.ContextVar("s3strata_upload_requester", default=None)


@contextmanager
def requester(request: Any) -> Iterator[None]:
    """Make ``request``'s user the one whose refs form fields accept, for the duration of the block.

    ``django_s3strata.middleware.DirectUploadMiddleware`` does this for every request.
    """
    token = _requester.set(functools.partial(_user_key, request))
    try:
        yield
    finally:
        _requester.reset(token)


# -- checks shared by the grant and the plain upload ------------------------------------------------


def _content_types(policy: UploadPolicy) -> tuple[str, ...] | None:
    if policy.content_types is not None:
        return policy.content_types
    configured = _opts()["DIRECT_UPLOAD_CONTENT_TYPES"]
    return tuple(configured) if configured is not None else None


def _max_size(policy: UploadPolicy) -> float:
    configured = _opts()["DIRECT_UPLOAD_MAX_SIZE"]
    limit = min(
        get_file_manager().config.advanced.max_file_size,
        direct.MAX_OBJECT_SIZE if configured is None else configured,
    )
    return min(limit, policy.max_size) if policy.max_size is not None else limit


def _check_type(policy: UploadPolicy, name: str, claimed: Any) -> tuple[str, str | None]:
    """Return (type to store, Content-Disposition) for a file named ``name`` said to be ``claimed``."""
    ctype = contenttypes.stored_type(claimed, name)
    patterns = _content_types(policy)
    if not contenttypes.allowed(ctype, patterns):
        shown = ", ".join(patterns) if patterns is not None else "*/* (not active content such as HTML, SVG, XML or scripts)"
        raise UploadRejectedError(f"Files of type {ctype!r} ({name}) are not accepted here; allowed: {shown}.")
    try:
        disposition = contenttypes.write_disposition(ctype, name, get_file_manager().config.advanced.active_content)
    except InvalidOptionError as exc:
        raise UploadRejectedError(str(exc)) from None
    return ctype, disposition


def _clean_name(filename: Any) -> str:
    if not isinstance(filename, str):
        raise UploadRejectedError(f"filename={filename!r} is invalid: send the file's name as a string.")
    name = posixpath.basename(clean_filename(filename).replace("\\", "/")) or "file"
    # S3 replaces "${filename}" in POST form fields with the sent file's name: a name carrying it
    # would let the browser choose part of the key or header values.
    if "${" in name:
        raise UploadRejectedError(f"filename {filename!r} contains '${{': rename the file without it.")
    return name


def check_file(policy: UploadPolicy, upload: Any) -> None:
    """Raise UploadRejectedError or FileTooLargeError unless a file sent through Django fits ``policy``.

    The same size bound and type rules as a direct upload: a form without JavaScript gets no more.
    """
    name = _clean_name(posixpath.basename(str(getattr(upload, "name", "") or "file")))
    size = getattr(upload, "size", None)
    limit = _max_size(policy)
    if size is not None and size > limit:
        raise FileTooLargeError(size, limit)
    _check_type(policy, name, getattr(upload, "content_type", None))


def _throttle(request: Any) -> None:
    """Count one start for ``request``'s user; raise UploadRateLimitedError over the limit."""
    rate = _opts()["DIRECT_UPLOAD_RATE_LIMIT"]
    if rate is None:
        return
    count, seconds = int(rate[0]), int(rate[1])
    window = int(time.time() // seconds)
    key = "s3strata:upload-starts:" + salted_hmac(_RATE_SALT, f"{_user_key(request)}:{window}", algorithm="sha256").hexdigest()
    if cache.add(key, 1, timeout=seconds):
        return
    try:
        started = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=seconds)
        return
    if started > count:
        retry = max(1, (window + 1) * seconds - int(time.time()))
        raise UploadRateLimitedError(
            f"Too many uploads started: at most {count} in {seconds} seconds. Try again in {retry} seconds.", retry
        )


# -- the grant -------------------------------------------------------------------------------------


def _parts(ticket: dict[str, Any]) -> list[int]:
    if "ps" not in ticket and isinstance(ticket.get("p"), list):  # a ticket granted before the part size was kept
        return [int(n) for n in ticket["p"]]
    return direct.part_sizes(int(ticket["s"]), int(ticket["ps"]))


def _parts_answer(sizes: list[int], first: int, urls: list[str]) -> list[dict[str, Any]]:
    return [{"number": n, "size": sizes[n - 1], "url": url} for n, url in enumerate(urls, start=first)]


def start_upload(request: Any, policy: UploadPolicy, filename: Any, size: Any, content_type: Any = None) -> dict[str, Any]:
    """Authorise, pick a fresh key and return the grant: a presigned POST or multipart part URLs, and a ticket.

    Raises PermissionDenied, UploadRateLimitedError, UploadRejectedError, FileTooLargeError or
    InvalidKeyError before anything is signed or written.
    """
    authorize(request, policy)
    _throttle(request)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UploadRejectedError(f"size={size!r} is invalid: send the file's length in bytes.")
    limit = _max_size(policy)
    if size > limit:
        raise FileTooLargeError(size, limit)
    name = _clean_name(filename)
    if content_type:
        try:
            contenttypes.parse_content_type(content_type)
        except InvalidOptionError as exc:
            raise UploadRejectedError(str(exc)) from None
    ctype, disposition = _check_type(policy, name, content_type)
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
        "d": disposition,
        "h": policy.hot_duration if policy.hot_duration is not None else opts["STORAGE_HOT_DURATION"],
        "u": _user_key(request),
        "p": policy.digest(),
        "x": expires,
        "at": int(time.time()),
    }
    grant: dict[str, Any]
    if size >= int(opts["DIRECT_UPLOAD_MULTIPART_THRESHOLD"]) and size > 0:
        target = direct.start_multipart(
            manager.objectstore,
            tier,
            key,
            size=size,
            content_type=ctype,
            content_disposition=disposition,
            part_size=int(opts["DIRECT_UPLOAD_PART_SIZE"]),
            expires_in=expires,
            max_size=limit,
        )
        ticket["m"], ticket["ps"] = target.upload_id, target.part_size
        grant = {
            "method": "multipart",
            "part_size": target.part_size,
            "part_count": len(target.sizes),
            "parts": _parts_answer(target.sizes, 1, target.urls),
        }
    else:
        post = direct.presigned_post(
            manager.objectstore,
            tier,
            key,
            size=size,
            content_type=ctype,
            content_disposition=disposition,
            expires_in=expires,
            max_size=limit,
        )
        grant = {"method": "post", "url": post.url, "fields": post.fields}
    logger.info("s3strata: direct upload granted for s3 key %s (%d bytes, %s) to %s", key, size, ctype, ticket["u"])
    grant.update(
        ticket=signing.dumps(ticket, salt=_TICKET_SALT, compress=True),
        key=key,
        filename=basename,
        content_type=ctype,
        tier=tier.value,
        visibility=visibility.value,
        expires_in=expires,
    )
    return grant


def _load_ticket(request: Any, token: Any) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise UploadRejectedError("ticket is missing: send the ticket that starting the upload returned.")
    try:
        ticket: dict[str, Any] = signing.loads(token, salt=_TICKET_SALT, max_age=_opts()["DIRECT_UPLOAD_EXPIRES"] + TICKET_GRACE)
    except signing.SignatureExpired:
        raise UploadRejectedError("The upload ticket has expired: start the upload again.") from None
    except signing.BadSignature:
        raise UploadRejectedError("The upload ticket is not valid: send the ticket that starting the upload returned.") from None
    if ticket.get("u") != _user_key(request):
        raise PermissionDenied("This upload was granted to someone else.")
    return ticket


def sign_parts(request: Any, token: Any, first: Any, last: Any) -> dict[str, Any]:
    """Return signed PUT URLs for parts ``first``..``last`` of a granted multipart upload (a batch at a time).

    URLs expire with the grant's lifetime, and never after the ticket does.
    """
    ticket = _load_ticket(request, token)
    if not ticket.get("m"):
        raise UploadRejectedError("This upload is a single POST: it has no parts to sign.")
    sizes = _parts(ticket)
    deadline = int(ticket.get("at", 0)) + int(ticket["x"]) + TICKET_GRACE
    expires = min(int(_opts()["DIRECT_UPLOAD_EXPIRES"]), deadline - int(time.time()))
    if expires < 1:
        raise UploadRejectedError("The upload ticket has expired: start the upload again.")
    try:
        urls = direct.sign_parts(
            get_file_manager().objectstore, StorageTier(ticket["t"]), ticket["k"], ticket["m"], sizes, first, last, expires
        )
    except InvalidOptionError as exc:
        raise UploadRejectedError(str(exc)) from None
    return {"part_size": sizes[0], "part_count": len(sizes), "parts": _parts_answer(sizes, first, urls)}


def abandoned_after() -> int:
    """Return the age (seconds) after which an unfinished multipart upload can no longer be finalized, plus a margin."""
    return int(_opts()["DIRECT_UPLOAD_EXPIRES"]) + TICKET_GRACE + ABANDON_MARGIN


# -- finalize --------------------------------------------------------------------------------------


def _refuse(tier: StorageTier, key: str, why: str) -> UploadRejectedError:
    """Remove an object that broke its grant and return the error to raise.

    Under the key's claim and only while no row points at it: a concurrent finalize of the same
    ticket may have recorded it meanwhile.
    """
    get_file_manager().sync.delete_object(tier, key, wait=None)
    logger.warning("s3strata: removed direct upload s3 key %s: %s", key, why)
    return UploadRejectedError(f"The uploaded object was removed: {why}")


def finalize_upload(request: Any, token: Any) -> FinalizedUpload:
    """Check that the granted object landed as granted, record it, and return its PhysicalFile and ref.

    Idempotent: finalizing the same ticket again returns the same row. An object that breaks its
    grant (size, type or disposition) is deleted and UploadRejectedError raised; one that has not
    arrived yet raises UploadNotFinishedError and can be finalized later.
    """
    ticket = _load_ticket(request, token)
    tier, key = StorageTier(ticket["t"]), str(ticket["k"])

    def done(record: PhysicalFile) -> FinalizedUpload:
        return FinalizedUpload(record, make_ref(record, owner=str(ticket["u"]), policy=str(ticket.get("p", ""))))

    existing = PhysicalFile.objects.filter(storage_tier=tier.value, path=key).first()
    if existing is not None:
        return done(existing)
    store = get_file_manager().objectstore
    if ticket.get("m"):
        try:
            direct.complete_multipart(store, tier, key, ticket["m"], _parts(ticket))
        except StorageError as exc:
            if exc.code == "IncompleteUpload":
                raise UploadNotFinishedError(str(exc)) from exc
            # NoSuchUpload: completed by an earlier finalize that failed afterwards; the HEAD decides.
            if exc.code != "NoSuchUpload":
                raise
    info = direct.head(store, tier, key)
    if info is None:
        raise UploadNotFinishedError(f"Nothing has been uploaded to {key!r} yet: upload the file, then finalize.")
    if info.size != ticket["s"]:
        raise _refuse(tier, key, f"it has {info.size} bytes where {ticket['s']} were granted.")
    if (info.content_type or "").lower() != ticket["c"]:
        raise _refuse(tier, key, f"its type {info.content_type!r} is not the granted {ticket['c']!r}.")
    if ticket.get("d") and info.content_disposition != ticket["d"]:
        raise _refuse(tier, key, f"it lacks the granted Content-Disposition {ticket['d']!r}.")
    seconds = ticket.get("h")
    hot_until = timezone.now() + timedelta(seconds=seconds) if tier is StorageTier.HOT and seconds is not None else None
    from .operations import adopt_object

    try:
        # Waits for a concurrent finalize of the same ticket (it holds the key's claim) to record it.
        record = adopt_object(tier, key, filename=ticket["f"], hot_until=hot_until, wait=None)
    except ConflictError:
        # Another finalize of this ticket recorded it first: that row is the answer.
        winner = PhysicalFile.objects.filter(storage_tier=tier.value, path=key).order_by("pk").first()
        if winner is None:
            raise
        return done(winner)
    # Two finalizes of one ticket can race past the check above: both keep the oldest row, and the
    # other's creator removes its row only (the object is shared, so it must stay).
    first = PhysicalFile.objects.filter(storage_tier=tier.value, path=key).order_by("pk").first()
    if first is not None and first.pk != record.pk:
        PhysicalFile.objects.filter(pk=record.pk).delete()
        return done(first)
    logger.info("s3strata: direct upload recorded as file %s at s3 key %s", record.pk, key)
    return done(record)


# -- refs ------------------------------------------------------------------------------------------


def make_ref(record: PhysicalFile, *, owner: str, policy: UploadPolicy | str) -> str:
    """Return a signed reference to ``record`` for a form to submit in place of the file.

    ``owner`` is the uploader's key and ``policy`` the policy (or its digest) it was uploaded
    under; ``check_ref`` accepts the ref only for both.
    """
    digest = policy.digest() if isinstance(policy, UploadPolicy) else policy
    return signing.dumps({"i": record.pk, "u": owner, "p": digest}, salt=_REF_SALT)


def _load(ref: str) -> tuple[PhysicalFile, dict[str, Any]]:
    try:
        data = signing.loads(ref, salt=_REF_SALT, max_age=REF_MAX_AGE)
    except signing.BadSignature:
        raise UploadRejectedError("The uploaded file's reference is not valid or has expired: upload the file again.") from None
    if not isinstance(data, dict):
        raise UploadRejectedError("The uploaded file's reference is not valid: upload the file again.")
    record = PhysicalFile.objects.filter(pk=data.get("i")).first()
    if record is None:
        raise UploadRejectedError("The uploaded file no longer exists: upload it again.")
    return record, data


def load_ref(ref: str) -> PhysicalFile:
    """Return the PhysicalFile a ref names (no policy or user check: see ``check_ref``), or raise UploadRejectedError."""
    return _load(ref)[0]


def check_ref(ref: str, policy: UploadPolicy) -> PhysicalFile:
    """Return the PhysicalFile a ref names if it was uploaded under ``policy`` by the current requester.

    The requester is known inside ``requester()`` (the middleware sets it); without it only the
    policy can be checked, and a warning says so once.
    """
    record, data = _load(ref)
    if data.get("p") != policy.digest():
        raise UploadRejectedError("This file was uploaded for another field: upload it again here.")
    who = _requester.get()
    if who is None:
        _warn_no_requester()
    elif data.get("u") != who():
        raise UploadRejectedError("This file was uploaded by someone else: upload it again.")
    return record


_warned: list[bool] = []


def _warn_no_requester() -> None:
    if not _warned:
        _warned.append(True)
        logger.warning(
            "s3strata: add 'django_s3strata.middleware.DirectUploadMiddleware' to MIDDLEWARE (after "
            "AuthenticationMiddleware) so that forms accept only the submitter's own direct uploads."
        )
