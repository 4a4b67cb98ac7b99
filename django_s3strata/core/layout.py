"""Layout: which bucket is which tier and which key prefix is which visibility, as plain data (no boto3).

Everything that must know where a file lives without talking to S3 asks a Layout: the
ObjectStore (its URLs and listings), the manager's moves, and on the Django side the model,
the queryset and the ORM adapter (``conf.get_settings().layout``).
"""

from __future__ import annotations

import string
from urllib.parse import quote

from .config import ResolvedTier, S3StrataConfig, parse_tier, resolve_tier, tier_clash
from .exceptions import ConfigurationError
from .keys import build_key, split_key
from .types import FileVisibility, PhysicalFile, StorageTier

__all__ = ["Layout"]

#: 1 for each byte a URL must escape (anything but unreserved characters and "/", including every
#: byte of a non-ASCII character). ``1 in key.encode().translate(_ESCAPE)`` is an exact test at about a
#: third of a regular expression's cost, and most keys then skip quote().
_ESCAPE = bytes(0 if chr(b) in string.ascii_letters + string.digits + "_.~/-" else 1 for b in range(256))


class Layout:
    """Both tiers' resolved settings, and the rules that read a key's tier, visibility and suffix."""

    def __init__(self, config: S3StrataConfig) -> None:
        self.tiers = {t: resolve_tier(config, t) for t in StorageTier}
        clash = tier_clash(self.tiers[StorageTier.HOT], self.tiers[StorageTier.COLD])
        if clash is not None:
            # Refused here, not only by the system check: workers and servers run no checks.
            raise ConfigurationError(
                f"{clash} Set different HOT_BUCKET and COLD_BUCKET, or distinct prefixes per tier "
                "(PUBLIC_HOT_PREFIX, PRIVATE_HOT_PREFIX, PUBLIC_COLD_PREFIX, PRIVATE_COLD_PREFIX)."
            )
        self.public_bases = {t: _public_base(self.tiers[t]) for t in StorageTier}

    def tier(self, tier: StorageTier) -> ResolvedTier:
        """Return the resolved settings of ``tier``."""
        return self.tiers[tier]

    def prefix(self, tier: StorageTier, visibility: FileVisibility) -> str:
        """Return the key prefix (without its slash) of ``visibility`` in ``tier``."""
        return self.tiers[tier].prefix(visibility)

    def key(self, tier: StorageTier, visibility: FileVisibility, suffix: str) -> str:
        """Return ``{prefix}/{suffix}`` in ``tier`` for ``visibility``."""
        return build_key(self.tiers[tier], visibility, suffix)

    def visibility_of(self, tier: StorageTier | str, path: str) -> FileVisibility:
        """Return the visibility of ``path`` in ``tier``; raise InvalidKeyError when it is under neither prefix."""
        return split_key(self.tiers[parse_tier(tier)], path)[0]

    def location(self, file: PhysicalFile) -> tuple[StorageTier, FileVisibility, str]:
        """Return a record's tier, visibility and key suffix (read from its path by the tier's prefixes)."""
        tier = parse_tier(file.storage_tier, what="storage_tier")
        visibility, suffix = split_key(self.tiers[tier], file.path)
        return tier, visibility, suffix

    def scan_prefixes(self, tier: StorageTier, prefix: str | None = None) -> list[str]:
        """Return the listing prefixes for ``tier`` narrowed by ``prefix``: only ever inside its two prefixes."""
        resolved = self.tiers[tier]
        roots = [resolved.public_prefix + "/", resolved.private_prefix + "/"]
        if not prefix:
            return roots
        return [
            prefix if prefix.startswith(root) else root for root in roots if prefix.startswith(root) or root.startswith(prefix)
        ]

    def same_location(self) -> bool:
        """Return True when both tiers live on one endpoint with one set of credentials."""
        return self.tiers[StorageTier.HOT].same_location(self.tiers[StorageTier.COLD])

    def public_url(self, tier: StorageTier, key: str) -> str:
        """Return the direct URL of ``key``: path-style on the endpoint, or under ``public_base_url``."""
        base = self.public_bases[tier]
        return base + (quote(key, safe="/") if 1 in key.encode().translate(_ESCAPE) else key)


def _public_base(resolved: ResolvedTier) -> str:
    """Return what a tier's public URLs start with: ``public_base_url``, or the bucket's address."""
    if resolved.public_base_url:
        return resolved.public_base_url.rstrip("/") + "/"
    if resolved.virtual_host:
        scheme, _, host = resolved.endpoint_url.partition("://")
        return f"{scheme}://{resolved.bucket}.{host}/"
    return f"{resolved.endpoint_url}/{resolved.bucket}/"
