"""boto3 clients: one session per process and credential source, a client per tier with explicit timeouts and retries."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ProfileNotFound

from .config import ResolvedTier, S3StrataAdvancedOptions
from .exceptions import ConfigurationError, CredentialsError
from .types import StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["build_clients", "client_options", "on_aws", "reset_sessions", "tier_credentials", "transfer_config"]


def build_clients(tiers: dict[StorageTier, ResolvedTier], adv: S3StrataAdvancedOptions) -> dict[StorageTier, S3Client]:
    """Return a client per tier (one shared when both tiers have one location and addressing style)."""
    clients: dict[StorageTier, S3Client] = {}
    for tier, resolved in tiers.items():
        other = clients.get(StorageTier.HOT)
        if (
            tier is StorageTier.COLD
            and other is not None
            and resolved.same_location(tiers[StorageTier.HOT])
            and (resolved.addressing_style == tiers[StorageTier.HOT].addressing_style)
            and resolved.client_config == tiers[StorageTier.HOT].client_config
        ):
            clients[tier] = other
            continue
        botocore_config, client_kwargs = client_options(resolved, adv)
        clients[tier] = _new_client(resolved, endpoint_url=resolved.endpoint_url, config=botocore_config, **client_kwargs)
    return clients


def on_aws(resolved: ResolvedTier) -> bool:
    """Return True when the tier's endpoint is Amazon S3's own (``*.amazonaws.com``, ``*.amazonaws.com.cn``)."""
    host = resolved.endpoint.lower().rstrip(".")
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def client_options(resolved: ResolvedTier, adv: S3StrataAdvancedOptions) -> tuple[Config, dict[str, Any]]:
    """Return the botocore Config of the tier's client and the client's other arguments (``verify``).

    The library's settings first, the tier's ``client_config`` merged over them (its ``s3`` and
    ``retries`` dicts key by key). Checksums left at None are "when_supported" on AWS only: botocore
    >= 1.36 adds CRC32 headers to every upload, and R2, B2 and GCS have refused them.
    """
    default_checksums = "when_supported" if on_aws(resolved) else "when_required"
    options: dict[str, Any] = {
        "region_name": resolved.region or "us-east-1",
        "signature_version": "s3v4",
        "s3": {"addressing_style": resolved.addressing_style},
        "retries": {"mode": "standard", "total_max_attempts": adv.max_attempts},
        "max_pool_connections": adv.max_concurrency * 2,
        "connect_timeout": adv.connect_timeout,
        "read_timeout": adv.read_timeout,
        "request_checksum_calculation": adv.request_checksum_calculation or default_checksums,
        "response_checksum_validation": adv.response_checksum_validation or default_checksums,
        "tcp_keepalive": True,
    }
    given = dict(resolved.client_config or {})
    kwargs: dict[str, Any] = {}
    if "verify" in given:
        kwargs["verify"] = given.pop("verify")
    for name, value in given.items():
        if name in ("s3", "retries") and isinstance(value, dict):
            merged = {**options[name], **value}
            if name == "retries" and "max_attempts" in value and "total_max_attempts" not in value:
                merged.pop("total_max_attempts", None)  # botocore reads total_max_attempts first
            if name == "s3":
                merged["addressing_style"] = resolved.addressing_style
            options[name] = merged
        else:
            options[name] = value
    return Config(**options), kwargs


def transfer_config(
    adv: S3StrataAdvancedOptions, *, concurrency: int | None = None, chunksize: int | None = None, threshold: int | None = None
) -> TransferConfig:
    """Return s3transfer's settings for one transfer: the options' part size and threshold, bounded concurrency."""
    cfg = TransferConfig(
        multipart_threshold=threshold or adv.multipart_threshold,
        multipart_chunksize=chunksize or adv.multipart_chunksize,
        max_concurrency=concurrency or min(adv.max_concurrency, 8),
        use_threads=True,
        preferred_transfer_client="classic",
    )
    # Bound the bytes held in memory by a streamed upload: parts read ahead of the network.
    cfg.max_in_memory_upload_chunks = max(2, cfg.max_request_concurrency)
    return cfg


_session_lock = threading.Lock()
_sessions: dict[str | None, boto3.session.Session] = {}
_sessions_pid = -1


def _session(profile: str | None) -> boto3.session.Session:
    """Return this process's boto3 session for ``profile`` (None: the default chain); hold ``_session_lock``."""
    global _sessions_pid
    if _sessions_pid != os.getpid():
        _sessions.clear()
        _sessions_pid = os.getpid()
    session = _sessions.get(profile)
    if session is None:
        try:
            session = boto3.session.Session(profile_name=profile)
        except ProfileNotFound:
            raise ConfigurationError(
                f"The AWS profile {profile!r} is not in the shared config files "
                f"({os.environ.get('AWS_CONFIG_FILE', '~/.aws/config')} and "
                f"{os.environ.get('AWS_SHARED_CREDENTIALS_FILE', '~/.aws/credentials')}): add it, or name another profile."
            ) from None
        _sessions[profile] = session
    return session


def _new_client(resolved: ResolvedTier, **kwargs: Any) -> S3Client:
    """Return a new S3 client for ``resolved`` from this process's boto3 session of its credential source.

    A session loads botocore's service model once; a new session per client costs about
    0.1 s each. The chain's credentials are resolved once per session and shared by its
    clients (refreshable ones refresh themselves). Sessions are not thread-safe, so clients
    are made under a lock. Static keys are passed to the client, never to the session.
    """
    if resolved.access_key is not None:
        kwargs.update(
            aws_access_key_id=resolved.access_key,
            aws_secret_access_key=resolved.secret_key,
            aws_session_token=resolved.session_token,
        )
    with _session_lock:
        return _session(resolved.profile).client("s3", **kwargs)


def tier_credentials(resolved: ResolvedTier) -> Credentials | None:
    """Return the botocore credentials ``resolved``'s clients sign with (None when the chain finds none).

    Static keys give fixed credentials; the default chain and profiles give the session's own
    object, the one its clients hold, so a refresh is seen by clients and presigner alike. The
    first call may ask a credentials endpoint (container, instance metadata, STS).
    """
    if resolved.access_key is not None and resolved.secret_key is not None:
        return Credentials(resolved.access_key, resolved.secret_key, resolved.session_token)
    with _session_lock:
        session = _session(resolved.profile)
        try:
            credentials: Credentials | None = session.get_credentials()
        except BotoCoreError as exc:
            raise CredentialsError(
                f"boto3 could not load credentials ({exc}). Set access_key and secret_key, or give the "
                "default chain what it needs (environment, profile, web identity, container or instance role).",
                operation="LoadCredentials",
                tier=resolved.tier.value,
                bucket=resolved.bucket,
                transient=True,
            ) from exc
        return credentials


def reset_sessions() -> None:
    """Forget this process's boto3 sessions: new clients read the environment and the shared config again."""
    with _session_lock:
        _sessions.clear()
