"""boto3 clients: one session per process, a client per tier with explicit timeouts and retries."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from .config import ResolvedTier, S3StrataAdvancedOptions
from .types import StorageTier

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["build_clients", "transfer_config"]


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
        ):
            clients[tier] = other
            continue
        botocore_config = Config(
            region_name=resolved.region or "us-east-1",
            signature_version="s3v4",
            s3={"addressing_style": resolved.addressing_style},
            retries={"mode": "standard", "total_max_attempts": adv.max_attempts},
            max_pool_connections=adv.max_concurrency * 2,
            connect_timeout=adv.connect_timeout,
            read_timeout=adv.read_timeout,
            request_checksum_calculation=adv.request_checksum_calculation,
            response_checksum_validation=adv.response_checksum_validation,
            tcp_keepalive=True,
        )
        clients[tier] = _new_client(
            endpoint_url=resolved.endpoint_url,
            aws_access_key_id=resolved.access_key,
            aws_secret_access_key=resolved.secret_key,
            config=botocore_config,
        )
    return clients


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
_session: tuple[int, boto3.session.Session] | None = None


def _new_client(**kwargs: Any) -> S3Client:
    """Return a new S3 client from this process's one boto3 session.

    A session loads botocore's service model once; a new session per client costs about
    0.1 s each. Sessions are not thread-safe, so clients are made under a lock.
    """
    global _session
    with _session_lock:
        if _session is None or _session[0] != os.getpid():
            _session = (os.getpid(), boto3.session.Session())
        return _session[1].client("s3", **kwargs)
