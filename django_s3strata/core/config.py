"""S3StrataConfig, S3TierConfig, S3StrataAdvancedOptions, and how a tier's settings are resolved."""

from __future__ import annotations

import functools
import ipaddress
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .contenttypes import ACTIVE_CONTENT_POLICIES, ActiveContent
from .exceptions import ConfigurationError, InvalidOptionError
from .objectparams import (
    ChecksumAlgorithm,
    ObjectParametersHook,
    ServerSideEncryption,
    check_encryption,
    parse_object_parameters,
)
from .types import FileVisibility, StorageTier

__all__ = [
    "MAX_DURATION",
    "MAX_PRESIGN_EXPIRY",
    "ResolvedTier",
    "S3StrataAdvancedOptions",
    "S3StrataConfig",
    "S3TierConfig",
    "check_client_config",
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
    #: boto3's checksum settings. None (the default) picks per tier: "when_supported" on AWS
    #: (``*.amazonaws.com``), "when_required" elsewhere, since R2, B2 and GCS have refused the CRC32
    #: headers botocore >= 1.36 adds to every upload (docs/providers.md).
    request_checksum_calculation: ChecksumWhen | None = None
    response_checksum_validation: ChecksumWhen | None = None
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
    #: Server-side copies of objects above this size go in parallel UploadPartCopy parts, at most
    #: ``part_copy_concurrency`` at once (None: ``max_concurrency``); below it, one CopyObject (a
    #: single server-side stream, which S3 refuses above 5 GiB). The default is from the bench
    #: (docs/performance.md): on a local server one CopyObject of 256 MiB beats 32 parallel parts;
    #: on AWS, parts are faster for large objects, so set 64 MiB or so there.
    part_copy_threshold: int = 1024 * 1024 * 1024
    part_copy_concurrency: int | None = None
    #: Called with a new file's name and its tier's ``object_parameters``; returns the parameters to
    #: write it with (per-file Cache-Control, metadata, tags, ...). See docs/django.md.
    object_parameters_hook: ObjectParametersHook | None = None

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
        threshold = self.part_copy_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 5 * 1024**2 <= threshold <= 5 * 1024**3:
            raise ConfigurationError(
                f"part_copy_threshold={threshold!r} is invalid: give bytes from 5 MiB (5242880, S3's smallest part) "
                "to 5 GiB (5368709120, the largest object one CopyObject copies)."
            )
        concurrency = self.part_copy_concurrency
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigurationError(
                f"part_copy_concurrency={concurrency!r} is invalid: give a whole number of at least 1, or None."
            )
        if self.multipart_chunksize < 5 * 1024 * 1024:
            raise ConfigurationError("multipart_chunksize must be at least 5 MiB (5242880), S3's smallest part.")
        if self.multipart_threshold < 1:
            raise ConfigurationError("multipart_threshold must be a positive number of bytes.")
        for name in ("request_checksum_calculation", "response_checksum_validation"):
            if getattr(self, name) not in (None, "when_supported", "when_required"):
                raise ConfigurationError(f"{name} must be None (chosen per endpoint), 'when_supported' or 'when_required'.")
        if self.presign_content_disposition not in (None, "inline", "attachment"):
            raise ConfigurationError("presign_content_disposition must be None, 'inline' or 'attachment'.")
        if self.active_content not in ACTIVE_CONTENT_POLICIES:
            raise ConfigurationError(
                f"active_content={self.active_content!r} is invalid: use 'attachment' (the default), 'refuse' or 'inline'."
            )
        if self.object_parameters_hook is not None and not callable(self.object_parameters_hook):
            raise ConfigurationError(
                f"object_parameters_hook={self.object_parameters_hook!r} is invalid: "
                "give a callable (filename, parameters) -> parameters."
            )


@dataclass
class S3TierConfig:
    """One tier's endpoint, credentials, bucket and prefixes (separate-endpoint mode).

    Without ``access_key`` and ``secret_key`` the tier uses boto3's default credential chain
    (environment, ``profile`` or the shared config, web identity, container and instance roles).
    """

    endpoint: str
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    bucket: str = ""
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
    #: A temporary key's token (STS); only with ``access_key`` and ``secret_key``.
    session_token: str | None = field(default=None, repr=False)
    #: A profile of the shared AWS config (``~/.aws/config``) to take credentials from, instead of keys.
    profile: str | None = None
    #: botocore ``Config`` options for this tier's client, by botocore's names (``proxies``,
    #: ``connect_timeout``, ``max_pool_connections``, ``retries``, ...), plus ``verify`` (a CA bundle
    #: path, or False); merged over the library's own (docs/providers.md). Not in repr: a proxy URL may hold a password.
    client_config: dict[str, Any] | None = field(default=None, repr=False)
    #: Server-side encryption of objects written here: "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with
    #: ``sse_kms_key_id`` or the account's default key, and ``bucket_key_enabled``). SSE-C is not supported.
    server_side_encryption: ServerSideEncryption | None = None
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None
    #: Checksum S3 keeps for every write and copy, compared after copies. None: "SHA256" where boto3
    #: sends checksums (AWS, or ``request_checksum_calculation="when_supported"``), none elsewhere.
    checksum_algorithm: ChecksumAlgorithm | None = None
    #: What every object written here carries (CacheControl, ContentDisposition, ContentEncoding,
    #: ContentLanguage, Metadata, Tagging, Expires); kept across moves.
    object_parameters: dict[str, Any] | None = None


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
    #: Credentials beyond static keys (both tiers, shared-endpoint mode); see S3TierConfig.
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    #: botocore ``Config`` options for both tiers' clients (shared-endpoint mode); see S3TierConfig.
    client_config: dict[str, Any] | None = field(default=None, repr=False)
    #: Encryption, checksums and object parameters of both tiers (shared-endpoint mode); see S3TierConfig.
    server_side_encryption: ServerSideEncryption | None = None
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None
    checksum_algorithm: ChecksumAlgorithm | None = None
    object_parameters: dict[str, Any] | None = None

    def setting_names(self, tier: StorageTier, fields: tuple[str, ...]) -> list[str]:
        """Return what a user sets to give ``tier``'s ``fields`` (S3TierConfig's names), for error messages.

        A settings reader that builds this config from its own keys overrides it, as ``missing_message``.
        """
        lower = tier.value.lower()
        if (self.hot if tier is StorageTier.HOT else self.cold) is not None:
            return [f"{lower}.{f}" for f in fields]
        return [{"bucket": f"{lower}_bucket"}.get(f, f) for f in fields]

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
            f"or give {lower}=S3TierConfig(endpoint=..., bucket=...)."
        )


@dataclass(frozen=True)
class ResolvedTier:
    """A tier's complete, validated settings, whichever mode supplied them.

    ``access_key`` and ``secret_key`` are both set (static keys, ``session_token`` optional) or
    both None: the credentials then come from boto3's chain, from ``profile`` when it is set.
    """

    tier: StorageTier
    endpoint: str
    port: int
    use_ssl: bool
    access_key: str | None
    secret_key: str | None = field(repr=False)
    bucket: str
    public_prefix: str
    private_prefix: str
    region: str | None
    addressing_style: AddressingStyle
    public_base_url: str | None
    storage_class: str | None
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    #: Validated botocore Config options (``check_client_config``); not hashed: it holds dicts.
    client_config: dict[str, Any] | None = field(default=None, hash=False, repr=False)
    server_side_encryption: ServerSideEncryption | None = None
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None
    checksum_algorithm: ChecksumAlgorithm | None = None
    #: Checked and normalised (``parse_object_parameters``); not hashed: it holds dicts.
    object_parameters: dict[str, Any] = field(default_factory=dict, hash=False)

    def write_encryption(self) -> dict[str, Any]:
        """Return the encryption arguments of a write to this tier (boto3 names), empty when none is set."""
        extra: dict[str, Any] = {}
        if self.server_side_encryption:
            extra["ServerSideEncryption"] = self.server_side_encryption
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.bucket_key_enabled is not None:
            extra["BucketKeyEnabled"] = self.bucket_key_enabled
        return extra

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

    @property
    def credential_source(self) -> tuple[str | None, ...]:
        """Return what identifies this tier's credentials: its keys, or the profile of boto3's chain.

        Holds the secret when keys are given: compare it, never log it (``describe_credentials`` is for people).
        """
        if self.access_key is not None:
            return ("keys", self.access_key, self.secret_key, self.session_token)
        return ("chain", self.profile)

    def describe_credentials(self) -> str:
        """Return where this tier's credentials come from, in words without any secret."""
        if self.access_key is not None:
            return "static keys in the settings" + (" with a session token" if self.session_token else "")
        if self.profile is not None:
            return f"the AWS profile {self.profile!r}"
        return "boto3's default credential chain"

    def same_location(self, other: ResolvedTier) -> bool:
        """Return True when a server-side copy between the two tiers is possible: one endpoint, region and identity."""
        return (self.endpoint_url, self.region, self.credential_source) == (
            other.endpoint_url,
            other.region,
            other.credential_source,
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
            session_token=block.session_token or None,
            profile=block.profile or None,
        )
    else:
        use_ssl = True if config.use_ssl is None else config.use_ssl
        hot = tier is StorageTier.HOT
        resolved = ResolvedTier(
            tier=tier,
            endpoint=config.endpoint or "",
            port=config.port if config.port is not None else (443 if use_ssl else 80),
            use_ssl=use_ssl,
            access_key=config.access_key,
            secret_key=config.secret_key,
            bucket=(config.hot_bucket if hot else config.cold_bucket) or "",
            # Both tiers default to "public"/"private" (the Python port's HOT defaults fell back to None).
            public_prefix=(config.public_hot_prefix if hot else config.public_cold_prefix) or "public",
            private_prefix=(config.private_hot_prefix if hot else config.private_cold_prefix) or "private",
            region=config.region,
            addressing_style=config.addressing_style,
            public_base_url=config.hot_public_base_url if hot else config.cold_public_base_url,
            storage_class=None if hot else config.advanced.cold_storage_class,
            session_token=config.session_token or None,
            profile=config.profile or None,
        )
    # An empty key (an unset environment variable read with a "" default) counts as not given.
    resolved = replace(resolved, access_key=resolved.access_key or None, secret_key=resolved.secret_key or None)
    missing = tuple(f for f in ("endpoint", "bucket") if not getattr(resolved, f))
    _check_credentials(config, resolved, missing)
    if missing:
        raise ConfigurationError(config.missing_message(tier, missing), tier=tier.value, missing=missing)
    given = block.client_config if block is not None else config.client_config
    if given is not None:
        resolved = replace(resolved, client_config=check_client_config(given, f"{lower} client_config"))
    resolved = _with_object_settings(resolved, block if block is not None else config, lower)
    _validate_resolved(resolved, lower)
    return resolved


def _with_object_settings(r: ResolvedTier, source: S3TierConfig | S3StrataConfig, lower: str) -> ResolvedTier:
    """Return ``r`` with the encryption, checksum and object parameters of ``source`` (a tier block or the shared config)."""
    sse, key, bucket_key = source.server_side_encryption, source.sse_kms_key_id, source.bucket_key_enabled
    check_encryption(sse, key, bucket_key, source.checksum_algorithm, f"The {lower} tier's")
    return replace(
        r,
        server_side_encryption=sse,
        sse_kms_key_id=key,
        bucket_key_enabled=bucket_key,
        checksum_algorithm=source.checksum_algorithm,
        object_parameters=parse_object_parameters(source.object_parameters, f"{lower} object_parameters"),
    )


#: botocore Config options the library sets from its own settings: the setting to use instead.
_OWN_OPTIONS = {
    "region_name": "the tier's region (REGION)",
    "signature_version": "nothing: presigned URLs and POST policies are signed with SigV4 ('s3v4'), so it is fixed",
}


def check_client_config(value: object, where: str = "client_config") -> dict[str, Any]:
    """Return ``value`` as botocore Config options plus ``verify``, or raise ConfigurationError naming the bad entry.

    Names are botocore's (``botocore.config.Config``); an unknown one is refused with the closest
    known name, and the values are checked by building the Config once.
    """
    import difflib

    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} must be a dict of botocore Config options, not {type(value).__name__}.")
    known = set(Config.OPTION_DEFAULTS) | {"verify"}
    for name in value:
        if name in _OWN_OPTIONS:
            raise ConfigurationError(f"{where}[{name!r}] is not accepted: set {_OWN_OPTIONS[name]}.")
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"{where} has the unknown option {name!r}.{hint} Use botocore Config's names ({', '.join(sorted(known))})."
            )
    s3 = value.get("s3")
    if s3 is not None and (not isinstance(s3, dict) or "addressing_style" in s3):
        raise ConfigurationError(
            f"{where}['s3'] must be a dict without 'addressing_style' (set the tier's ADDRESSING_STYLE for that)."
        )
    verify = value.get("verify", True)
    if not isinstance(verify, bool | str) or verify == "":
        raise ConfigurationError(f"{where}['verify']={verify!r} is invalid: give True, False or the path of a CA bundle.")
    if isinstance(verify, str) and not os.path.isfile(verify):
        raise ConfigurationError(f"{where}['verify']={verify!r}: no such CA bundle file.")
    options = {k: v for k, v in value.items() if k != "verify"}
    try:
        Config(**options)
    except (BotoCoreError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where} is invalid: {exc}") from None
    return dict(value)


def _check_credentials(config: S3StrataConfig, r: ResolvedTier, others: tuple[str, ...]) -> None:
    """Refuse half a key pair, a session token without keys, and keys together with a profile.

    ``others`` are the tier's other missing fields, named in the same message.
    """
    names = functools.partial(config.setting_names, r.tier)
    if (r.access_key is None) != (r.secret_key is None) or (r.session_token and r.access_key is None):
        keys = {f for f in ("access_key", "secret_key") if getattr(r, f) is None}
        missing = tuple(f for f in ("endpoint", "access_key", "secret_key", "bucket") if f in keys or f in others)
        text = config.missing_message(r.tier, missing)
        if r.session_token and r.access_key is None and r.secret_key is None:
            text += (
                f" {names(('session_token',))[0]} is used only together with both keys; without keys, leave it out "
                "and boto3's default credential chain supplies the credentials."
            )
        else:
            text += " An access key and its secret key go together; leave both out to use boto3's default credential chain."
        raise ConfigurationError(text, tier=r.tier.value, missing=missing)
    if r.access_key is not None and r.profile is not None:
        pair, profile = names(("access_key", "secret_key")), names(("profile",))[0]
        raise ConfigurationError(
            f"The {r.tier.value} tier gives both keys ({', '.join(pair)}) and {profile}: give the keys or the profile, not both.",
            tier=r.tier.value,
        )


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
