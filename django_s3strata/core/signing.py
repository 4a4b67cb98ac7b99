"""A SigV4 query-string signer for presigned GET URLs, with the signing key cached per day.

boto3's ``generate_presigned_url`` rebuilds a request object and derives the signing key on
every call; a page of private files needs hundreds of URLs, so we sign them directly. The
algorithm is AWS Signature Version 4 for query-string authentication with an unsigned payload.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

__all__ = ["PresignSigner"]

_ALGORITHM = "AWS4-HMAC-SHA256"


def _uri_encode(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe)


class PresignSigner:
    """Sign GET URLs for one endpoint, bucket and set of credentials (thread-safe)."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str,
        virtual_host: bool = False,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self._scheme = parts.scheme
        if virtual_host:
            self._host = f"{bucket}.{parts.netloc}"
            self._prefix = "/"
        else:
            self._host = parts.netloc
            self._prefix = f"/{_uri_encode(bucket)}/"
        self._access_key = access_key
        self._secret = secret_key.encode()
        self._region = region
        self._lock = threading.Lock()
        self._key_day = ""
        self._key = b""

    def __repr__(self) -> str:
        return f"PresignSigner(host={self._host!r}, region={self._region!r})"

    def _signing_key(self, day: str) -> bytes:
        with self._lock:
            if day != self._key_day:
                key = hmac.new(b"AWS4" + self._secret, day.encode(), hashlib.sha256).digest()
                for part in (self._region, "s3", "aws4_request"):
                    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
                self._key, self._key_day = key, day
            return self._key

    def presign_get(
        self, key: str, expires_in: int, response_params: dict[str, str] | None = None, now: datetime | None = None
    ) -> str:
        """Return a presigned GET URL for ``key`` valid ``expires_in`` seconds from ``now``."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        params = {
            "X-Amz-Algorithm": _ALGORITHM,
            "X-Amz-Credential": f"{self._access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(expires_in),
            "X-Amz-SignedHeaders": "host",
            **(response_params or {}),
        }
        query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params.items()))
        path = self._prefix + _uri_encode(key, safe="-_.~/")
        canonical = f"GET\n{path}\n{query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self._scheme}://{self._host}{path}?{query}&X-Amz-Signature={signature}"
