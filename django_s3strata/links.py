"""Stable download links: the download view's URL of a file, by id or by a signed token that survives moves.

A direct or presigned URL names the object's key, which changes when the file moves between
tiers or visibilities; the download view (``django_s3strata.downloads``) looks the row up when
the link is followed and redirects to a short-lived URL of wherever the file is then. A token
is ``django.core.signing`` JSON (salted, so no other signed value of the project is a token)
carrying its expiry (``expires_in``, else ``DOWNLOAD_TOKEN_MAX_AGE``: a week) and the disposition
it was made with: a token link takes no ``?disposition=``, which nobody signed.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from . import conf
from .core.exceptions import InvalidOptionError, S3StrataError

__all__ = [
    "DISPOSITIONS",
    "URL_MODES",
    "ExpiredLinkError",
    "InvalidLinkError",
    "load_token",
    "load_token_data",
    "parse_url_mode",
    "sign_token",
    "view_url",
]

#: What a field's or a storage's ``url`` hands out: the object's own URL (direct or presigned),
#: the download view by id (permission-checked), or the download view by a signed token.
URL_MODES = ("direct", "view", "signed")
DISPOSITIONS = ("attachment", "inline")

_SALT = "django_s3strata.links.download"


class InvalidLinkError(S3StrataError):
    """A download token that was not signed here, or was altered."""


class ExpiredLinkError(InvalidLinkError):
    """A download token whose time limit has passed."""


def parse_url_mode(value: Any, what: str = "url_mode") -> str:
    """Return ``value`` if it is one of URL_MODES, else raise InvalidOptionError."""
    if value not in URL_MODES:
        raise InvalidOptionError(f"{what}={value!r} is invalid: use one of {', '.join(URL_MODES)}.")
    return str(value)


def _check_disposition(disposition: str | None) -> None:
    if disposition is not None and disposition not in DISPOSITIONS:
        raise InvalidOptionError(f"disposition={disposition!r} is invalid: use 'attachment' or 'inline'.")


def sign_token(file_id: int, expires_in: int | None = None, disposition: str | None = None) -> str:
    """Return an unguessable token naming file ``file_id``, valid ``expires_in`` seconds (None: ``DOWNLOAD_TOKEN_MAX_AGE``).

    ``disposition`` ("attachment" or "inline") is signed into the token; None: ``DOWNLOAD_DISPOSITION``
    when the link is followed.
    """
    if expires_in is None:
        expires_in = conf.get_settings().options["DOWNLOAD_TOKEN_MAX_AGE"]  # None there: no expiry
    elif isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise InvalidOptionError(f"expires_in={expires_in!r} is invalid: give whole seconds (1 or more) or None.")
    _check_disposition(disposition)
    payload: dict[str, int | str] = {"i": int(file_id)}
    if expires_in is not None:
        payload["e"] = int(time.time()) + int(expires_in)
    if disposition is not None:
        payload["d"] = disposition
    return signing.dumps(payload, salt=_SALT, compress=False)


def load_token_data(token: str) -> tuple[int, str | None]:
    """Return (file id, signed disposition or None) of a token; raise InvalidLinkError or ExpiredLinkError."""
    try:
        data = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        raise InvalidLinkError("This download link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or data.get("d", "attachment") not in DISPOSITIONS:
        raise InvalidLinkError("This download link is not valid.")
    expires = data.get("e")
    if expires is not None and (not isinstance(expires, int) or expires < time.time()):
        raise ExpiredLinkError("This download link has expired: ask for a new one.")
    return int(data["i"]), data.get("d")


def load_token(token: str) -> int:
    """Return the file id a token names; raise InvalidLinkError (tampered) or ExpiredLinkError (past its limit)."""
    return load_token_data(token)[0]


def view_url(file_id: int, *, signed: bool = False, expires_in: int | None = None, disposition: str | None = None) -> str:
    """Return the path of the download view for file ``file_id`` (by id, or by a signed token with ``signed``).

    A token carries ``disposition`` and its expiry (``expires_in``, else ``DOWNLOAD_TOKEN_MAX_AGE``)
    signed; a link by id carries ``?disposition=``. Needs ``django_s3strata.urls`` in the URLconf
    (``NoReverseMatch`` otherwise). No query, no S3 request.
    """
    _check_disposition(disposition)
    if signed:
        return reverse("s3strata:download", kwargs={"token": sign_token(file_id, expires_in, disposition)})
    url = reverse("s3strata:download", kwargs={"pk": file_id})
    return f"{url}?{urlencode({'disposition': disposition})}" if disposition else url
