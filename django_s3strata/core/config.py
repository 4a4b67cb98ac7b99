"""S3StrataConfig, S3TierConfig, S3StrataAdvancedOptions, and how a tier's settings are resolved."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Literal

from .contenttypes import ACTIVE_CONTENT_POLICIES, ActiveContent
from .exceptions import ConfigurationError, InvalidOptionError
from .types import FileVisibility, StorageTier

__all__ = [
    "MAX_DURATION",
    "MAX_PRESIGN_EXPIRY",
    "ResolvedTier",
    "S3StrataAdvancedOptions",
    "S3StrataConfig",
    "S3TierConfig",
    "endpoint_url",
    "get_bucket_name",
    "get_path_prefix",
    "get_tier_config",
    "parse_seconds",
    "parse_tier",
    "parse_visibility",
    "resolve_tier",
    "tier_clash",
]

#: S3 refuses SigV4 presigned URLs valid for longer than seven days.
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600
#: The longest hot duration or grace period accepted: 100 years of 365 days (3,153,600,000 s). Far
#: past any real need, and far inside what a datetime can hold (year 9999), so ``now + duration``
#: cannot overflow after an object was already stored.
MAX_DURATION = 100 * 365 * 24 * 3600
AddressingStyle = Literal["path", "virtual"]
ChecksumWhen = Literal["when_supported", "when_required"]
ContentDisposition = Literal["inline", "attachment"]


def parse_seconds(
    value: object, what: str, *, allow_none: bool = True, minimum: int = 0, maximum: int = MAX_DURATION
) -> int | None:
    """Return ``value`` as whole seconds from ``minimum`` to ``maximum`` (None when allowed), else raise InvalidOptionError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        span = f"{maximum // (365 * 86400)} years" if maximum >= 365 * 86400 else f"{maximum // 86400} days"
        raise InvalidOptionError(
            f"{what}={value!r} is invalid: give a whole number of seconds from {minimum} to {maximum} ({span})."
        )
    return value


def parse_tier(value: object, *, what: str = "tier") -> StorageTier:
    """Return ``value`` as a StorageTier, accepting "HOT"/"COLD" in any case."""
    if isinstance(value, StorageTier):
        return value
    if isinstance(value, str) and value.upper() in StorageTier.__members__:
        return StorageTier(value.upper())
    raise InvalidOptionError(f"Invalid {what} {value!r}: use StorageTier.HOT or StorageTier.COLD ('HOT' or 'COLD').")


def parse_visibility(value: object, *, what: str = "visibility") -> FileVisibility:
    """Return ``value`` as a FileVisibility, accepting "PUBLIC"/"PRIVATE" in any case."""
    if isinstance(value, FileVisibility):
        return value
    if isinstance(value, str) and value.upper() in FileVisibility.__members__:
        return FileVisibility(value.upper())
    raise InvalidOptionError(
        f"Invalid {what} {value!r}: use FileVisibility.PUBLIC or FileVisibility.PRIVATE ('PUBLIC' or 'PRIVATE')."
    )


def _check_prefix(value: str, name: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("/") or value.endswith("/"):
        raise ConfigurationError(
            f"{name}={value!r} is invalid: a prefix is a non-empty key segment such as 'public', without leading or trailing '/'."
        )
    if any(part in ("", ".", "..") for part in value.split("/")) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigurationError(f"{name}={value!r} is invalid: no empty, '.' or '..' segments and no control characters.")


@dataclass
class S3StrataAdvancedOptions:
    """Defaults and tuning; every field has a safe default."""

    default_presigned_url_expiration: int = 14400  # seconds
    max_file_size: float = math.inf  # bytes
    default_storage_tier: StorageTier | str = StorageTier.HOT
    default_visibility: FileVisibility | str = FileVisibility.PRIVATE
    # Beyond upstream:
    #: Storage class for objects written to COLD when the tier sets none (e.g. "STANDARD_IA").
    cold_storage_class: str | None = None
    #: When set, presigned URLs carry ``Content-Disposition: <this>; filename*=<record filename>``.
    presign_content_disposition: ContentDisposition | None = None
    #: Files a browser would run as a page (HTML, XHTML, SVG, XML, JavaScript): stored with
    #: ``Content-Disposition: attachment`` ("attachment"), refused ("refuse"), or as sent ("inline").
    active_content: ActiveContent = "attachment"
    #: Parallel S3 requests per process: the thread pool and the HTTP connection pool size.
    max_concurrency: int = 16
    #: Threads of the async API for steps that move a large body through this process (uploads over
    #: 1 MiB, streamed copies between endpoints, downloads); None: one per core, at least 2. Hashing
    #: and signing a body keeps a thread on a core, and more of them than cores stall the event loop.
    async_bulk_concurrency: int | None = None
    #: Uploads and streamed copies above this size go multipart, in parts of ``multipart_chunksize``.
    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    #: boto3's checksum settings; "when_required" for S3-compatible servers that reject CRC32 headers.
    request_checksum_calculation: ChecksumWhen = "when_supported"
    response_checksum_validation: ChecksumWhen = "when_supported"
    #: Attempts per request (first try included) for transient errors, with exponential backoff and jitter.
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Orphans younger than this (seconds) are never deleted or adopted: their upload may be in flight.
    orphan_grace_period: int = 24 * 3600
    #: How long a writer's claim on the keys it writes lasts (seconds): a killed writer blocks its
    #: files for at most this long. Longer than any single move's copy should take.
    claim_seconds: int = 900
    #: How long a move or delete waits for another writer's claim on the same file (seconds)
    #: before it raises ConflictError; sweeps never wait.
    claim_wait: float = 10.0

    def __post_init__(self) -> None:
        try:
            self.default_storage_tier = parse_tier(self.default_storage_tier, what="default_storage_tier")
            self.default_visibility = parse_visibility(self.default_visibility, what="default_visibility")
        except InvalidOptionError as exc:
            raise ConfigurationError(str(exc)) from None
        exp = self.default_presigned_url_expiration
        if isinstance(exp, bool) or not isinstance(exp, int) or not 1 <= exp <= MAX_PRESIGN_EXPIRY:
            raise ConfigurationError(
                f"default_presigned_url_expiration={exp!r} is invalid: "
                f"give whole seconds from 1 to {MAX_PRESIGN_EXPIRY} (7 days, S3's limit)."
            )
        if isinstance(self.max_file_size, bool) or not isinstance(self.max_file_size, int | float) or not self.max_file_size > 0:
            raise ConfigurationError(
                f"max_file_size={self.max_file_size!r} is invalid: give a positive number of bytes (math.inf for no limit)."
            )
        for name in ("max_concurrency", "max_attempts", "async_bulk_concurrency"):
            value = getattr(self, name)
            if name == "async_bulk_concurrency" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}={value!r} is invalid: give a whole number of at least 1.")
        if isinstance(self.claim_seconds, bool) or not isinstance(self.claim_seconds, int) or self.claim_seconds < 1:
            raise ConfigurationError(f"claim_seconds={self.claim_seconds!r} is invalid: give whole seconds, at least 1.")
        if isinstance(self.claim_wait, bool) or not isinstance(self.claim_wait, int | float) or not 0 <= self.claim_wait <= 3600:
            raise ConfigurationError(f"claim_wait={self.claim_wait!r} is invalid: give seconds from 0 to 3600.")
        if self.multipart_chunksize < 5 * 1024 * 1024:
            raise ConfigurationError("multipart_chunksize must be at least 5 MiB (5242880), S3's smallest part.")
        if self.multipart_threshold < 1:
            raise ConfigurationError("multipart_threshold must be a positive number of bytes.")
        for name in ("request_checksum_calculation", "response_checksum_validation"):
            if getattr(self, name) not in ("when_supported", "when_required"):
                raise ConfigurationError(f"{name} must be 'when_supported' or 'when_required'.")
        if self.presign_content_disposition not in (None, "inline", "attachment"):
            raise ConfigurationError("presign_content_disposition must be None, 'inline' or 'attachment'.")
        if self.active_content not in ACTIVE_CONTENT_POLICIES:
            raise ConfigurationError(
                f"active_content={self.active_content!r} is invalid: use 'attachment' (the default), 'refuse' or 'inline'."
            )


@dataclass
class S3TierConfig:
    """One tier's endpoint, credentials, bucket and prefixes (separate-endpoint mode)."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    port: int = 443
    use_ssl: bool = True
    public_prefix: str = "public"
    private_prefix: str = "private"
    # Beyond upstream:
    region: str | None = None
    addressing_style: AddressingStyle = "path"
    #: Base of public URLs (a CDN or custom domain), e.g. "https://cdn.example.com/hot".
    public_base_url: str | None = None
    #: Storage class for objects written to this tier (e.g. "STANDARD_IA", "GLACIER_IR").
    storage_class: str | None = None


@dataclass
class S3StrataConfig:
    """Configuration: one shared endpoint, or a ``hot`` and ``cold`` S3TierConfig each."""

    endpoint: str | None = None
    port: int | None = None
    use_ssl: bool | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    hot_bucket: str | None = None
    cold_bucket: str | None = None
    public_hot_prefix: str | None = None
    private_hot_prefix: str | None = None
    public_cold_prefix: str | None = None
    private_cold_prefix: str | None = None
    hot: S3TierConfig | None = None
    cold: S3TierConfig | None = None
    advanced: S3StrataAdvancedOptions = field(default_factory=S3StrataAdvancedOptions)
    # Beyond upstream, shared-endpoint mode:
    region: str | None = None
    addressing_style: AddressingStyle = "path"
    hot_public_base_url: str | None = None
    cold_public_base_url: str | None = None

    def missing_message(self, tier: StorageTier, missing: tuple[str, ...]) -> str:
        """Return the error for ``tier``'s missing ``missing`` fields (S3TierConfig's names), naming what to set.

        A settings reader that builds this config from its own keys overrides it, so that the
        error names those keys (the Django app's says ``S3STRATA['HOT_BUCKET']``).
        """
        lower = tier.value.lower()
        if (self.hot if tier is StorageTier.HOT else self.cold) is not None:
            where = f"Set {', '.join(f'{lower}.{f}' for f in missing)}"
        else:
            names = {"bucket": f"{lower}_bucket"}
            where = f"Set {', '.join(names.get(f, f) for f in missing)} on S3StrataConfig (shared-endpoint mode)"
        return (
            f"Missing S3 configuration for the {tier.value} tier: {', '.join(missing)}. {where}, "
            f"or give {lower}=S3TierConfig(endpoint=..., access_key=..., secret_key=..., bucket=...)."
        )


@dataclass(frozen=True)
class ResolvedTier:
    """A tier's complete, validated settings, whichever mode supplied them."""

    tier: StorageTier
    endpoint: str
    port: int
    use_ssl: bool
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str
    public_prefix: str
    private_prefix: str
    region: str | None
    addressing_style: AddressingStyle
    public_base_url: str | None
    storage_class: str | None

    @property
    def endpoint_url(self) -> str:
        """Return ``http(s)://endpoint[:port]``, the port shown only when not the scheme's default."""
        return endpoint_url(self.endpoint, self.port, self.use_ssl)

    @property
    def virtual_host(self) -> bool:
        """Return True when URLs name the bucket in the host (as botocore decides: not for IPs or dotted names)."""
        if self.addressing_style != "virtual" or "." in self.bucket or self.bucket != self.bucket.lower():
            return False
        try:
            ipaddress.ip_address(self.endpoint.strip("[]"))
        except ValueError:
            return self.endpoint != "localhost"
        return False

    def prefix(self, visibility: FileVisibility) -> str:
        """Return the key prefix of ``visibility`` in this tier."""
        return self.public_prefix if visibility is FileVisibility.PUBLIC else self.private_prefix

    def same_location(self, other: ResolvedTier) -> bool:
        """Return True when a server-side copy between the two tiers is possible."""
        return (self.endpoint_url, self.access_key, self.secret_key, self.region) == (
            other.endpoint_url,
            other.access_key,
            other.secret_key,
            other.region,
        )


def endpoint_url(endpoint: str, port: int, use_ssl: bool) -> str:
    """Return the endpoint URL, omitting 443 for https and 80 for http."""
    scheme = "https" if use_ssl else "http"
    default = 443 if use_ssl else 80
    return f"{scheme}://{endpoint}" if port == default else f"{scheme}://{endpoint}:{port}"


def resolve_tier(config: S3StrataConfig, tier: StorageTier | str) -> ResolvedTier:
    """Return the settings of ``tier``: its S3TierConfig when given, else the shared fields."""
    tier = parse_tier(tier)
    lower = tier.value.lower()
    block = config.hot if tier is StorageTier.HOT else config.cold
    if block is not None:
        resolved = ResolvedTier(
            tier=tier,
            endpoint=block.endpoint,
            port=block.port,
            use_ssl=block.use_ssl,
            access_key=block.access_key,
            secret_key=block.secret_key,
            bucket=block.bucket,
            public_prefix=block.public_prefix,
            private_prefix=block.private_prefix,
            region=block.region,
            addressing_style=block.addressing_style,
            public_base_url=block.public_base_url,
            storage_class=block.storage_class or (config.advanced.cold_storage_class if tier is StorageTier.COLD else None),
        )
    else:
        use_ssl = True if config.use_ssl is None else config.use_ssl
        hot = tier is StorageTier.HOT
        resolved = ResolvedTier(
            tier=tier,
            endpoint=config.endpoint or "",
            port=config.port if config.port is not None else (443 if use_ssl else 80),
            use_ssl=use_ssl,
            access_key=config.access_key or "",
            secret_key=config.secret_key or "",
            bucket=(config.hot_bucket if hot else config.cold_bucket) or "",
            # Both tiers default to "public"/"private" (the Python port's HOT defaults fell back to None).
            public_prefix=(config.public_hot_prefix if hot else config.public_cold_prefix) or "public",
            private_prefix=(config.private_hot_prefix if hot else config.private_cold_prefix) or "private",
            region=config.region,
            addressing_style=config.addressing_style,
            public_base_url=config.hot_public_base_url if hot else config.cold_public_base_url,
            storage_class=None if hot else config.advanced.cold_storage_class,
        )
    missing = tuple(f for f in ("endpoint", "access_key", "secret_key", "bucket") if not getattr(resolved, f))
    if missing:
        raise ConfigurationError(config.missing_message(tier, missing), tier=tier.value, missing=missing)
    _validate_resolved(resolved, lower)
    return resolved


def _validate_resolved(r: ResolvedTier, lower: str) -> None:
    if "://" in r.endpoint or "/" in r.endpoint:
        raise ConfigurationError(
            f"{lower} endpoint {r.endpoint!r} must be a host name such as 's3.amazonaws.com'; "
            "set the scheme with use_ssl and the port with port."
        )
    if isinstance(r.port, bool) or not isinstance(r.port, int) or not 0 < r.port < 65536:
        raise ConfigurationError(f"{lower} port {r.port!r} is invalid: give a TCP port from 1 to 65535.")
    _check_prefix(r.public_prefix, f"{lower} public prefix")
    _check_prefix(r.private_prefix, f"{lower} private prefix")
    pub, priv = r.public_prefix + "/", r.private_prefix + "/"
    if pub.startswith(priv) or priv.startswith(pub):
        raise ConfigurationError(
            f"The {lower} tier's public prefix {r.public_prefix!r} and private prefix {r.private_prefix!r} "
            "overlap: give them distinct first segments so a key's visibility is unambiguous."
        )
    if r.addressing_style not in ("path", "virtual"):
        raise ConfigurationError(f"{lower} addressing_style must be 'path' or 'virtual', not {r.addressing_style!r}.")


def tier_clash(hot: ResolvedTier, cold: ResolvedTier) -> str | None:
    """Return why HOT and COLD cannot share their location (one bucket, overlapping prefixes), or None.

    A key would then belong to both tiers: archival would copy an object onto itself and then
    delete it. The system check s3strata.E003 and building an ObjectStore say the same words.
    """
    if hot.endpoint_url != cold.endpoint_url or hot.bucket != cold.bucket:
        return None
    for h in (hot.public_prefix, hot.private_prefix):
        for c in (cold.public_prefix, cold.private_prefix):
            a, b = h + "/", c + "/"
            if a.startswith(b) or b.startswith(a):
                return (
                    f"HOT and COLD share the bucket {hot.bucket!r} and their prefixes overlap ({h!r} and {c!r}): "
                    "a key would belong to both tiers."
                )
    return None


# Upstream's helper functions, kept for code written against the Python port.


def get_tier_config(config: S3StrataConfig, tier: StorageTier | str) -> ResolvedTier:
    """Return the resolved settings of ``tier`` (upstream name)."""
    return resolve_tier(config, tier)


def get_bucket_name(config: S3StrataConfig, tier: StorageTier | str) -> str:
    """Return the bucket of ``tier``."""
    return resolve_tier(config, tier).bucket


def get_path_prefix(config: S3StrataConfig, tier: StorageTier | str, visibility: FileVisibility | str) -> str:
    """Return the key prefix for ``tier`` and ``visibility``."""
    return resolve_tier(config, tier).prefix(parse_visibility(visibility))
