"""A SigV4 query-string signer for presigned GET URLs, reading the current credentials on every call.

boto3's ``generate_presigned_url`` rebuilds a request object and derives the signing key on
every call; a page of private files needs hundreds of URLs, so we sign them directly. The
algorithm is AWS Signature Version 4 for query-string authentication with an unsigned payload.

Credentials are read on every call from a botocore credentials object (``get_frozen_credentials``:
temporary ones refresh themselves before they expire), the signing key is cached per access key,
day, region and service, a session token travels as ``X-Amz-Security-Token``, and a URL never
outlives credentials whose expiry is known: ``X-Amz-Expires`` is capped at their remaining lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote, urlsplit

from .exceptions import CredentialsError

__all__ = ["MIN_URL_LIFETIME", "CredentialSource", "FrozenCredentials", "PresignSigner", "credentials_expiry"]

logger = logging.getLogger(__name__)

_ALGORITHM = "AWS4-HMAC-SHA256"
_SERVICE = "s3"
#: A URL valid for less than this (seconds) is refused (CredentialsError) unless less was asked for:
#: it would expire before a browser could follow it.
MIN_URL_LIFETIME = 10


class FrozenCredentials(Protocol):
    """One consistent set of keys, as botocore's ``ReadOnlyCredentials`` holds them."""

    @property
    def access_key(self) -> str | None: ...
    @property
    def secret_key(self) -> str | None: ...
    @property
    def token(self) -> str | None: ...


class CredentialSource(Protocol):
    """What a presigner reads keys from: botocore's ``Credentials`` and ``RefreshableCredentials`` are ones."""

    def get_frozen_credentials(self) -> FrozenCredentials: ...


def credentials_expiry(source: CredentialSource) -> tuple[FrozenCredentials, datetime | None]:
    """Return ``source``'s current keys (refreshed when due) and when they expire (None: not known).

    botocore keeps the expiry of refreshable credentials in ``_expiry_time`` and has no public
    accessor; static keys have none. A refresh publishes the new keys, then their expiry: when
    the keys are still the published ones after the expiry was read, that expiry is theirs or
    the one before (earlier), never a later one.
    """
    for _ in range(3):
        frozen = source.get_frozen_credentials()
        expiry = getattr(source, "_expiry_time", None)
        if getattr(source, "_frozen_credentials", frozen) is frozen:
            break
    return frozen, expiry if isinstance(expiry, datetime) else None


def _uri_encode(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe)


class PresignSigner:
    """Sign GET URLs for one endpoint and bucket with the current credentials of ``credentials`` (thread-safe)."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        credentials: CredentialSource,
        region: str,
        virtual_host: bool = False,
        *,
        tier: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self._scheme = parts.scheme
        if virtual_host:
            self._host = f"{bucket}.{parts.netloc}"
            self._prefix = "/"
        else:
            self._host = parts.netloc
            self._prefix = f"/{_uri_encode(bucket)}/"
        self._bucket = bucket
        self._tier = tier
        self._credentials = credentials
        self._region = region
        # (access key, secret key, day, signing key, escaped X-Amz-Credential): one tuple, replaced
        # whole, so readers need no lock. Likewise (token, escaped token): a token is long to escape.
        self._cached: tuple[str, str, str, bytes, str] = ("", "", "", b"", "")
        self._token: tuple[str, str] = ("", "")
        self._stamp: tuple[int, str] = (-1, "")

    def __repr__(self) -> str:
        return f"PresignSigner(host={self._host!r}, region={self._region!r})"

    def _signing_key(self, access_key: str, secret_key: str, day: str) -> tuple[bytes, str]:
        """Return the signing key and the escaped credential of (access key, day), derived once per day and key."""
        cached = self._cached
        if cached[0] == access_key and cached[2] == day and hmac.compare_digest(cached[1], secret_key):
            return cached[3], cached[4]
        key = hmac.new(b"AWS4" + secret_key.encode(), day.encode(), hashlib.sha256).digest()
        for part in (self._region, _SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        credential = _uri_encode(f"{access_key}/{day}/{self._region}/{_SERVICE}/aws4_request")
        self._cached = (access_key, secret_key, day, key, credential)
        return key, credential

    def _escaped_token(self, token: str) -> str:
        cached = self._token
        if cached[0] != token:
            cached = self._token = (token, _uri_encode(token))
        return cached[1]

    def _refuse(self, key: str, message: str) -> CredentialsError:
        return CredentialsError(message, operation="presign GetObject", tier=self._tier, bucket=self._bucket, key=key)

    def presign_get(
        self, key: str, expires_in: int, response_params: dict[str, str] | None = None, now: datetime | None = None
    ) -> str:
        """Return a presigned GET URL for ``key`` valid ``expires_in`` seconds from ``now`` (less if the keys expire sooner)."""
        try:
            frozen, expiry = credentials_expiry(self._credentials)
        except Exception as exc:  # a failed mandatory refresh: botocore raises its own errors or RuntimeError
            raise self._refuse(key, f"the credentials could not be refreshed: {exc}") from exc
        access_key, secret_key = frozen.access_key, frozen.secret_key
        if not access_key or not secret_key:
            raise self._refuse(key, "no credentials to sign with: set keys, or give boto3's credential chain some.")
        if now is None:
            second = int(time.time())
            stamps = self._stamp
            if stamps[0] != second:  # formatted once a second: strftime costs as much as the hashing
                stamps = self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
            stamp = stamps[1]
        else:
            second = int(now.timestamp())
            stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        if expiry is not None:
            left = int(expiry.timestamp()) - second
            if left < expires_in:
                if left < min(expires_in, MIN_URL_LIFETIME):
                    raise self._refuse(
                        key,
                        f"the credentials expire in {max(left, 0)} s (at {expiry.isoformat()}) and were not renewed: "
                        f"a URL valid for {expires_in} s cannot be signed. Check the credential source's refresh.",
                    )
                logger.debug("presigned URL capped at %d s (asked %d s): the credentials expire at %s", left, expires_in, expiry)
                expires_in = left
        day = stamp[:8]
        scope = f"{day}/{self._region}/{_SERVICE}/aws4_request"
        signing_key, credential = self._signing_key(access_key, secret_key, day)
        # The URL lists the response parameters, then the authentication ones, as botocore does; the
        # canonical request sorts them all (byte-identical URLs to generate_presigned_url's).
        pairs = [(_uri_encode(k), _uri_encode(v)) for k, v in (response_params or {}).items()]
        pairs += [
            ("X-Amz-Algorithm", _ALGORITHM),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if frozen.token:
            pairs.append(("X-Amz-Security-Token", self._escaped_token(frozen.token)))
        query = "&".join(f"{k}={v}" for k, v in pairs)
        canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        path = self._prefix + _uri_encode(key, safe="-_.~/")
        canonical = f"GET\n{path}\n{canonical_query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self._scheme}://{self._host}{path}?{query}&X-Amz-Signature={signature}"
