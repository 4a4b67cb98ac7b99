"""Failures from S3 arrive as our own errors, naming what failed and chaining boto3's error."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from django_s3strata.core import (
    BucketNotFoundError,
    FileManager,
    InMemoryAdapter,
    S3StrataAdvancedOptions,
    S3StrataConfig,
    StorageError,
    UploadOptions,
)
from tests.s3server import ACCESS_KEY, SECRET_KEY


def config_for(host: str, port: int, bucket: str, **adv: Any) -> S3StrataConfig:
    return S3StrataConfig(
        endpoint=host,
        port=port,
        use_ssl=False,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        hot_bucket=bucket,
        cold_bucket=bucket + "-cold",
        advanced=S3StrataAdvancedOptions(**adv),
    )


def test_missing_bucket(moto_server: Any) -> None:
    fm = FileManager(config_for(moto_server.host, moto_server.port, "no-such-bucket-here"), InMemoryAdapter())
    with pytest.raises(BucketNotFoundError) as info:
        fm.sync.upload(b"x", UploadOptions(path_suffix="k.txt"))
    err = info.value
    assert (err.operation, err.tier, err.bucket, err.key, err.code) == (
        "PutObject",
        "HOT",
        "no-such-bucket-here",
        "private/k.txt",
        "NoSuchBucket",
    )
    assert "create it, or fix the HOT bucket setting" in str(err)
    assert isinstance(err.__cause__, ClientError)
    assert fm.adapter.files == {}


def test_unreachable_endpoint_is_a_transient_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    fm = FileManager(config_for("127.0.0.1", port, "bucket", max_attempts=2, connect_timeout=1), InMemoryAdapter())
    with pytest.raises(StorageError) as info:
        fm.sync.upload(b"x")
    assert info.value.transient and f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value.__cause__, BotoCoreError)
