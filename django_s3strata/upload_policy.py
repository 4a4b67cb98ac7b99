"""What a direct upload may be, and who may start one: the signed policy, permission, rate limit and file checks.

A **policy** (in the form widget's HTML) fixes tier, visibility, hot duration, ``upload_to``,
content types and size bound; the browser cannot change them. Uploads through Django
(``check_file``) are held to the same size and type rules as direct ones.

The user is named as ``user:<pk>``, or for anonymous uploads by a salted HMAC of the session key
(``uploader_key``): tickets and refs are readable by page script, and the session key must stay HttpOnly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import time
from collections.abc import Callable
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from . import conf
from .core import contenttypes, direct
from .core.exceptions import FileTooLargeError, InvalidOptionError
from .core.keys import clean_filename
from .services import get_file_manager

__all__ = [
    "UploadPolicy",
    "UploadRateLimitedError",
    "UploadRejectedError",
    "authorize",
    "check_file",
    "check_type",
    "clean_name",
    "max_size",
    "throttle",
    "uploader_key",
]

_POLICY_SALT = "django_s3strata.uploads.policy"
_SESSION_SALT = "django_s3strata.uploads.session"
_RATE_SALT = "django_s3strata.uploads.rate"


class UploadRejectedError(InvalidOptionError):
    """A direct upload was refused: a bad or expired token, a type not allowed, or an object that does not match."""


class UploadRateLimitedError(UploadRejectedError):
    """Too many uploads were started by this user lately; ``retry_after`` says when to try again (seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
            patterns = tuple(contenttypes.parse_pattern(pattern) for pattern in self.content_types)
            object.__setattr__(self, "content_types", patterns)
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


def _options() -> dict[str, Any]:
    return conf.get_settings().options


# -- who is asking ---------------------------------------------------------------------------------


def authorize(request: Any, policy: UploadPolicy) -> None:
    """Raise PermissionDenied unless ``request``'s user may upload under ``policy``."""
    hook: Callable[[Any, UploadPolicy], bool] | str | None = _options()["DIRECT_UPLOAD_AUTHORIZE"]
    if hook is not None:
        check = import_string(hook) if isinstance(hook, str) else hook
        allowed = bool(check(request, policy))
    else:
        user = getattr(request, "user", None)
        permission = _options()["DIRECT_UPLOAD_PERMISSION"]
        allowed = bool(user is not None and user.is_authenticated and (permission is None or user.has_perm(permission)))
    if not allowed:
        raise PermissionDenied("You may not upload files here: sign in with an account allowed to upload.")


def uploader_key(request: Any) -> str:
    """Return the name that tickets and refs give ``request``'s user: ``user:<pk>`` or ``session:<hmac>``."""
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


def throttle(request: Any) -> None:
    """Count one start for ``request``'s user; raise UploadRateLimitedError over the limit."""
    rate = _options()["DIRECT_UPLOAD_RATE_LIMIT"]
    if rate is None:
        return
    allowed, seconds = int(rate[0]), int(rate[1])
    window = int(time.time() // seconds)
    digest = salted_hmac(_RATE_SALT, f"{uploader_key(request)}:{window}", algorithm="sha256").hexdigest()
    cache_key = "s3strata:upload-starts:" + digest
    if cache.add(cache_key, 1, timeout=seconds):
        return
    try:
        started = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1, timeout=seconds)
        return
    if started > allowed:
        retry_after = max(1, (window + 1) * seconds - int(time.time()))
        raise UploadRateLimitedError(
            f"Too many uploads started: at most {allowed} in {seconds} seconds. Try again in {retry_after} seconds.",
            retry_after,
        )


# -- checks shared by the grant and the plain upload ------------------------------------------------


def _content_types(policy: UploadPolicy) -> tuple[str, ...] | None:
    if policy.content_types is not None:
        return policy.content_types
    configured = _options()["DIRECT_UPLOAD_CONTENT_TYPES"]
    return tuple(configured) if configured is not None else None


def max_size(policy: UploadPolicy) -> float:
    """Return the largest file ``policy`` admits: the smallest of its bound, the settings' and S3's."""
    configured = _options()["DIRECT_UPLOAD_MAX_SIZE"]
    limit = min(
        get_file_manager().config.advanced.max_file_size,
        direct.MAX_OBJECT_SIZE if configured is None else configured,
    )
    return min(limit, policy.max_size) if policy.max_size is not None else limit


def check_type(policy: UploadPolicy, name: str, claimed: Any) -> tuple[str, str | None]:
    """Return (type to store, Content-Disposition) for a file named ``name`` said to be ``claimed``."""
    content_type = contenttypes.stored_type(claimed, name)
    patterns = _content_types(policy)
    if not contenttypes.allowed(content_type, patterns):
        shown = ", ".join(patterns) if patterns is not None else "*/* (not active content such as HTML, SVG, XML or scripts)"
        raise UploadRejectedError(f"Files of type {content_type!r} ({name}) are not accepted here; allowed: {shown}.")
    try:
        disposition = contenttypes.write_disposition(content_type, name, get_file_manager().config.advanced.active_content)
    except InvalidOptionError as exc:
        raise UploadRejectedError(str(exc)) from None
    return content_type, disposition


def clean_name(filename: Any) -> str:
    """Return the base name to store ``filename`` under, or raise UploadRejectedError."""
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
    name = clean_name(posixpath.basename(str(getattr(upload, "name", "") or "file")))
    size = getattr(upload, "size", None)
    limit = max_size(policy)
    if size is not None and size > limit:
        raise FileTooLargeError(size, limit)
    check_type(policy, name, getattr(upload, "content_type", None))
