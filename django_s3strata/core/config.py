"""S3StrataConfig, S3TierConfig, and how a tier's settings are resolved (S3StrataAdvancedOptions is in ``options``)."""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .exceptions import ConfigurationError
from .objectparams import (
    ChecksumAlgorithm,
    ServerSideEncryption,
    check_encryption,
    parse_object_parameters,
)
from .options import (
    MAX_DURATION,
    MAX_PRESIGN_EXPIRY,
    S3StrataAdvancedOptions,
    parse_seconds,
    parse_tier,
    parse_visibility,
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

AddressingStyle = Literal["path", "virtual"]


def _check_prefix(value: str, name: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("/") or value.endswith("/"):
        raise ConfigurationError(
            f"{name}={value!r} is invalid: a prefix is a non-empty key segment such as 'public', without leading or trailing '/'."
        )
    if any(part in ("", ".", "..") for part in value.split("/")) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigurationError(f"{name}={value!r} is invalid: no empty, '.' or '..' segments and no control characters.")


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
