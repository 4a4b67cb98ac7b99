"""The signed tokens of a direct upload: the ticket a grant carries, and the ref that finalize returns.

Both are signed with Django's ``SECRET_KEY`` (``django.core.signing``), so any web process can serve
any step and no table is needed:

- a **ticket** (returned by ``start_upload``) fixes the key, size, content type, disposition, the
  policy's digest and the user the grant was made for; S3 enforces key, size, type and
  disposition through the POST policy, the presigned PUT's signed headers or the signed part lengths;
- a **ref** (returned by ``finalize_upload``) names the recorded PhysicalFile, the policy it was
  uploaded under and its uploader; a form field accepts it only under the same policy, from the
  same user (``check_ref``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core import signing
from django.core.exceptions import PermissionDenied

from . import conf
from .core import direct
from .core.types import StorageTier
from .models import PhysicalFile
from .upload_policy import UploadPolicy, UploadRejectedError, uploader_key

__all__ = [
    "ABANDON_MARGIN",
    "REF_MAX_AGE",
    "TICKET_GRACE",
    "UploadTicket",
    "abandoned_after",
    "check_ref",
    "load_ref",
    "make_ref",
    "requester",
]

logger = logging.getLogger(__name__)

_TICKET_SALT = "django_s3strata.uploads.ticket"
_REF_SALT = "django_s3strata.uploads.ref"
#: A ref stays usable for a day: long enough for a form left open, short enough to be worthless later.
REF_MAX_AGE = 86400
#: A ticket outlives its grant by this much: a large upload that began just before the grant
#: expired can still get part URLs and be finalized.
TICKET_GRACE = 3600
#: Unfinished multipart uploads are aborted this long after their ticket expired (clock skew,
#: a sweep running while the last part lands).
ABANDON_MARGIN = 3600


def _grant_lifetime() -> int:
    return int(conf.get_settings().options["DIRECT_UPLOAD_EXPIRES"])


def abandoned_after() -> int:
    """Return the age (seconds) after which an unfinished multipart upload can no longer be finalized, plus a margin."""
    return _grant_lifetime() + TICKET_GRACE + ABANDON_MARGIN


# -- the ticket ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UploadTicket:
    """What a grant fixed, signed into the ticket that the parts and finalize steps send back."""

    tier: str
    key: str
    filename: str
    size: int
    content_type: str
    disposition: str | None
    #: Seconds the file stays HOT once recorded (None: no end).
    hot_duration: int | None
    #: ``uploader_key`` of the user the grant was made for.
    user: str
    #: ``UploadPolicy.digest()`` of the policy the grant was made under.
    policy: str
    #: The grant's lifetime (seconds) and when it was made (a Unix time).
    expires_in: int
    granted_at: int
    #: Set for a multipart grant only.
    upload_id: str | None = None
    part_size: int | None = None

    def sign(self) -> str:
        """Return the ticket as a signed token for the client to send back."""
        return signing.dumps(dataclasses.asdict(self), salt=_TICKET_SALT, compress=True)

    @classmethod
    def load(cls, request: Any, token: Any) -> UploadTicket:
        """Return the ticket in ``token`` if it is valid and was granted to ``request``'s user.

        Raise UploadRejectedError for a missing, forged or expired ticket, PermissionDenied for
        someone else's.
        """
        if not isinstance(token, str) or not token:
            raise UploadRejectedError("ticket is missing: send the ticket that starting the upload returned.")
        invalid = "The upload ticket is not valid: send the ticket that starting the upload returned."
        try:
            data = signing.loads(token, salt=_TICKET_SALT, max_age=_grant_lifetime() + TICKET_GRACE)
            ticket = cls(**data)
        except signing.SignatureExpired:
            raise UploadRejectedError("The upload ticket has expired: start the upload again.") from None
        except (signing.BadSignature, TypeError):
            raise UploadRejectedError(invalid) from None
        if ticket.user != uploader_key(request):
            raise PermissionDenied("This upload was granted to someone else.")
        return ticket

    @property
    def storage_tier(self) -> StorageTier:
        """Return the tier the object goes to."""
        return StorageTier(self.tier)

    def part_sizes(self) -> list[int]:
        """Return the planned part lengths of a multipart grant."""
        if self.part_size is None:
            raise UploadRejectedError("This upload is a single POST or PUT: it has no parts.")
        return direct.part_sizes(self.size, self.part_size)

    def seconds_left(self) -> int:
        """Return how long the ticket stays valid (seconds; 0 or less once it has expired)."""
        return self.granted_at + self.expires_in + TICKET_GRACE - int(time.time())


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


# Looked up only when a ref is checked: most requests never need the user, nor an anonymous session.
_requester: contextvars.ContextVar[Callable[[], str] | None] = contextvars.ContextVar("s3strata_upload_requester", default=None)


@contextmanager
def requester(request: Any) -> Iterator[None]:
    """Make ``request``'s user the one whose refs form fields accept, for the duration of the block.

    ``django_s3strata.middleware.DirectUploadMiddleware`` does this for every request.
    """
    token = _requester.set(functools.partial(uploader_key, request))
    try:
        yield
    finally:
        _requester.reset(token)


def check_ref(ref: str, policy: UploadPolicy) -> PhysicalFile:
    """Return the PhysicalFile a ref names if it was uploaded under ``policy`` by the current requester.

    The requester is known inside ``requester()`` (the middleware sets it); without it only the
    policy can be checked, and a warning says so once.
    """
    record, data = _load(ref)
    if data.get("p") != policy.digest():
        raise UploadRejectedError("This file was uploaded for another field: upload it again here.")
    current_requester = _requester.get()
    if current_requester is None:
        _warn_no_requester()
    elif data.get("u") != current_requester():
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
