"""Encryption, checksums and object parameters on every write and move, and verified copies on a KMS-style bucket.

Real moto servers (two endpoints for streamed copies), and a fault proxy that answers like an SSE-KMS
bucket (ETags that are not MD5s, the KMS headers) in front of them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from django_s3strata.core import (
    FileManager,
    InMemoryAdapter,
    S3StrataAdvancedOptions,
    S3StrataConfig,
    S3TierConfig,
    SetTierOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.config import resolve_tier
from django_s3strata.core.exceptions import ConfigurationError, StorageError, VerificationError
from django_s3strata.core.objectstore import ObjectStore
from tests.conftest import Env, make_env
from tests.faults import FaultProxy, Faults, KmsBucket
from tests.s3server import ACCESS_KEY, SECRET_KEY, MotoS3Server

PARAMETERS = {
    "CacheControl": "public, max-age=86400",
    "ContentLanguage": "de",
    "Metadata": {"Project": "strata", "owner": "ops"},
    "Tagging": {"team": "web", "kind": "report"},
    "Expires": datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
}
MIB = 1024 * 1024


def config_for(env: Env, hosts: tuple[tuple[str, int], tuple[str, int]], layout: str, **tier: Any) -> S3StrataConfig:
    """Return ``env``'s buckets reached at ``hosts`` (HOT's, COLD's), every tier with the settings ``tier``."""
    adv = S3StrataAdvancedOptions(multipart_threshold=6 * MIB, multipart_chunksize=5 * MIB, max_attempts=1)
    (a_host, a_port), (b_host, b_port) = hosts
    if layout == "shared":
        return S3StrataConfig(
            endpoint=a_host,
            port=a_port,
            use_ssl=False,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            hot_bucket=env.hot_bucket,
            cold_bucket=env.cold_bucket,
            advanced=adv,
            **tier,
        )
    return S3StrataConfig(
        hot=S3TierConfig(a_host, ACCESS_KEY, SECRET_KEY, env.hot_bucket, port=a_port, use_ssl=False, **tier),
        cold=S3TierConfig(b_host, ACCESS_KEY, SECRET_KEY, env.cold_bucket, port=b_port, use_ssl=False, **tier),
        advanced=adv,
    )


@pytest.fixture(params=["shared", "separate"])
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def plain(layout: str, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Env:
    return make_env(layout, moto_server, moto_server_b)


@pytest.fixture
def kms_proxies(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[tuple[Faults, FaultProxy, FaultProxy]]:
    faults = Faults()
    faults.kms = KmsBucket()
    a, b = (
        FaultProxy(moto_server.host, moto_server.port, faults).start(),
        FaultProxy(moto_server_b.host, moto_server_b.port, faults).start(),
    )
    yield faults, a, b
    a.stop()
    b.stop()


def hosts_of(env: Env, layout: str, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Any:
    return ((moto_server.host, moto_server.port), (moto_server_b.host, moto_server_b.port))


def head(env: Env, tier: str, key: str) -> dict[str, Any]:
    return dict(env.client(tier).head_object(Bucket=env.bucket(tier), Key=key, ChecksumMode="ENABLED"))


def tags(env: Env, tier: str, key: str) -> dict[str, str]:
    found = env.client(tier).get_object_tagging(Bucket=env.bucket(tier), Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def assert_parameters(env: Env, tier: str, key: str, sse: str | None = None) -> dict[str, Any]:
    h = head(env, tier, key)
    assert h["CacheControl"] == "public, max-age=86400"
    assert h["ContentLanguage"] == "de"
    assert h["Metadata"] == {"project": "strata", "owner": "ops"}
    assert h["Expires"] == PARAMETERS["Expires"]
    assert tags(env, tier, key) == {"team": "web", "kind": "report"}
    if sse is not None:
        assert h["ServerSideEncryption"] == sse
    return h


# -- settings ----------------------------------------------------------------------


def test_settings_are_checked_by_name() -> None:
    base = {"endpoint": "s3.example.com", "access_key": "k", "secret_key": "s", "hot_bucket": "h", "cold_bucket": "c"}
    with pytest.raises(ConfigurationError, match=r"Unknown object parameter 'CacheControll'.*Did you mean 'CacheControl'"):
        resolve_tier(S3StrataConfig(**base, object_parameters={"CacheControll": "x"}), "HOT")
    with pytest.raises(ConfigurationError, match="sse_kms_key_id is set: it needs server_side_encryption='aws:kms'"):
        resolve_tier(S3StrataConfig(**base, server_side_encryption="AES256", sse_kms_key_id="alias/x"), "HOT")
    with pytest.raises(ConfigurationError, match="SSE-C"):
        resolve_tier(S3StrataConfig(**base, server_side_encryption="SSE-C"), "HOT")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="bucket_key_enabled applies to SSE-KMS only"):
        resolve_tier(S3StrataConfig(**base, bucket_key_enabled=True), "HOT")
    with pytest.raises(ConfigurationError, match="checksum_algorithm='MD5'"):
        resolve_tier(S3StrataConfig(**base, checksum_algorithm="MD5"), "HOT")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Metadata"):
        resolve_tier(S3StrataConfig(**base, object_parameters={"Metadata": {"naïve": "x"}}), "HOT")
    with pytest.raises(ConfigurationError, match="printable ASCII"):
        resolve_tier(S3StrataConfig(**base, object_parameters={"CacheControl": "a\r\nX-Evil: 1"}), "HOT")
    r = resolve_tier(
        S3StrataConfig(**base, server_side_encryption="aws:kms", sse_kms_key_id="alias/k", bucket_key_enabled=True), "HOT"
    )
    assert r.write_encryption() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/k", "BucketKeyEnabled": True}
    with pytest.raises(ConfigurationError, match="object_parameters_hook"):
        S3StrataAdvancedOptions(object_parameters_hook="not callable")  # type: ignore[arg-type]


# -- every write path and move kind, on moto --------------------------------------------


@pytest.mark.parametrize("size", [11, 7 * MIB], ids=["put", "multipart"])
def test_writes_and_moves_keep_parameters_encryption_and_checksums(
    plain: Env, layout: str, size: int, moto_server: MotoS3Server, moto_server_b: MotoS3Server
) -> None:
    config = config_for(
        plain,
        hosts_of(plain, layout, moto_server, moto_server_b),
        layout,
        server_side_encryption="AES256",
        checksum_algorithm="SHA256",
        object_parameters=PARAMETERS,
    )
    files = FileManager(config, InMemoryAdapter()).sync
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    f = files.upload(data, UploadOptions(filename="report.csv"))
    h = assert_parameters(plain, "HOT", f.path, "AES256")
    assert h["ContentType"] == "text/csv; charset=utf-8"
    if size < 6 * MIB:
        assert h["ChecksumSHA256"]  # one PutObject: its full-object checksum
    # COLD and back: a server-side copy (one endpoint) or a streamed one (two); everything kept.
    f = files.set_tier(f, SetTierOptions(tier="COLD"))
    h = assert_parameters(plain, "COLD", f.path, "AES256")
    assert h["ContentType"] == "text/csv; charset=utf-8"
    assert plain.read("COLD", f.path) == data and plain.keys("HOT") == []
    f = files.set_tier(f, SetTierOptions(tier="HOT"))
    assert_parameters(plain, "HOT", f.path, "AES256")
    assert plain.read("HOT", f.path) == data


def test_a_copy_in_parts_keeps_parameters(plain: Env, monkeypatch: pytest.MonkeyPatch, moto_server: MotoS3Server) -> None:
    if plain.config.hot is not None:
        pytest.skip("copies in parts are server-side copies: one endpoint")
    config = config_for(plain, hosts_of(plain, "shared", moto_server, moto_server), "shared", object_parameters=PARAMETERS)
    config.advanced.part_copy_threshold = 5 * MIB
    files = FileManager(config, InMemoryAdapter()).sync
    data = b"p" * (11 * MIB)
    f = files.upload(data, UploadOptions(filename="big.bin"))
    f = files.set_tier(f, SetTierOptions(tier="COLD"))
    assert_parameters(plain, "COLD", f.path)
    assert plain.read("COLD", f.path) == data


def test_the_hook_sets_per_file_values(plain: Env, layout: str, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def hook(filename: str, parameters: dict[str, Any]) -> dict[str, Any]:
        seen.append((filename, dict(parameters)))
        return {**parameters, "ContentDisposition": f'attachment; filename="{filename}"', "Metadata": {"source": filename}}

    config = config_for(
        plain, hosts_of(plain, layout, moto_server, moto_server_b), layout, object_parameters={"CacheControl": "no-cache"}
    )
    config.advanced.object_parameters_hook = hook
    files = FileManager(config, InMemoryAdapter()).sync
    f = files.upload(b"{}", UploadOptions(filename="data.json"))
    assert seen == [("data.json", {"CacheControl": "no-cache"})]
    h = head(plain, "HOT", f.path)
    assert (h["CacheControl"], h["ContentDisposition"], h["Metadata"]) == (
        "no-cache",
        'attachment; filename="data.json"',
        {"source": "data.json"},
    )
    assert h["ContentType"] == "application/json; charset=utf-8"
    f = files.set_tier(f, SetTierOptions(tier="COLD"))
    h = head(plain, "COLD", f.path)
    assert (h["ContentDisposition"], h["Metadata"]) == ('attachment; filename="data.json"', {"source": "data.json"})
    assert len(seen) == 1  # a move keeps the object's values; the hook is for new files


def test_charset_only_for_text(plain: Env) -> None:
    files = FileManager(plain.config, InMemoryAdapter()).sync
    types = {}
    for name in ("a.txt", "b.csv", "c.json", "d.png", "e.md"):
        f = files.upload(b"x", UploadOptions(filename=name))
        types[name] = head(plain, "HOT", f.path)["ContentType"]
    assert types == {
        "a.txt": "text/plain; charset=utf-8",
        "b.csv": "text/csv; charset=utf-8",
        "c.json": "application/json; charset=utf-8",
        "d.png": "image/png",
        "e.md": "text/markdown; charset=utf-8",
    }


# -- a KMS-style bucket ------------------------------------------------------------------


def _kms_files(
    env: Env, layout: str, proxies: tuple[Faults, FaultProxy, FaultProxy], **tier: Any
) -> tuple[FileManager, ObjectStore]:
    _, a, b = proxies
    config = config_for(
        env,
        ((a.host, a.port), (b.host, b.port)),
        layout,
        server_side_encryption="aws:kms",
        sse_kms_key_id="arn:aws:kms:us-east-1:111122223333:key/s3strata-test",
        **tier,
    )
    manager = FileManager(config, InMemoryAdapter())
    return manager, manager.objectstore


@pytest.mark.parametrize("checksum", ["SHA256", None])
def test_moves_verify_on_a_kms_bucket(
    plain: Env, layout: str, kms_proxies: tuple[Faults, FaultProxy, FaultProxy], checksum: str | None
) -> None:
    manager, store = _kms_files(plain, layout, kms_proxies, checksum_algorithm=checksum)
    files = manager.sync
    for data in (b"small and encrypted", b"k" * (7 * MIB)):
        f = files.upload(data, UploadOptions(filename="secret.bin"))
        info = store.head(StorageTier.HOT, f.path)
        assert info is not None and info.encryption == "aws:kms" and info.etag_md5 is False
        if len(data) < 6 * MIB:
            assert info.etag != hashlib.md5(data).hexdigest() and len(info.etag or "") == 32  # not the MD5
            assert ("SHA256" in info.checksums) is (checksum is not None)
        f = files.set_tier(f, SetTierOptions(tier="COLD"))
        f = files.set_tier(f, SetTierOptions(tier="HOT"))
        assert plain.read("HOT", f.path) == data and plain.keys("COLD") == []
        assert plain.hot_client.head_object(Bucket=plain.hot_bucket, Key=f.path)["ServerSideEncryption"] == "aws:kms"
    assert not store.etags_are_md5(StorageTier.HOT)


@pytest.mark.parametrize("checksum", ["SHA256", None])
@pytest.mark.parametrize("change", ["same-size", "other-size"])
def test_an_object_changed_during_a_kms_move_is_caught(
    plain: Env, layout: str, kms_proxies: tuple[Faults, FaultProxy, FaultProxy], change: str, checksum: str | None
) -> None:
    faults = kms_proxies[0]
    manager, _ = _kms_files(plain, layout, kms_proxies, checksum_algorithm=checksum)
    files = manager.sync
    f = files.upload(b"the original bytes", UploadOptions(filename="x.bin"))
    other = b"the changed! bytes" if change == "same-size" else b"changed, and longer than before"
    # Rewritten behind the library's back after its HEAD, before the copy reads the object; moto ignores
    # CopySourceIfMatch and If-Match, so the pin does not stop it: the verification must.
    op = "CopyObject" if layout == "shared" else "GetObject"
    faults.race(op, 1, "before", lambda: plain.put("HOT", f.path, other))
    if change == "same-size" and checksum is None and layout == "shared":
        # Neither MD5 nor checksum: only the size could tell, and it is the same. What a KMS bucket
        # without checksums cannot prove (docs); the move copies what is there now.
        files.set_tier(f, SetTierOptions(tier="COLD"))
        assert plain.read("COLD", f.path) == other
        return
    with pytest.raises(StorageError) as caught:
        files.set_tier(f, SetTierOptions(tier="COLD"))
    # A server-side copy: moto copied the new bytes and the checksum (else the size) refuses them. A
    # streamed copy: the GET pinned to the ETag read (given back as the real one by the proxy) is refused.
    assert isinstance(caught.value, VerificationError) or caught.value.code == "PreconditionFailed"
    assert plain.read("HOT", f.path) == other and plain.keys("COLD") == []


def test_kms_proxy_rewrites_what_it_should(plain: Env, kms_proxies: tuple[Faults, FaultProxy, FaultProxy]) -> None:
    manager, store = _kms_files(plain, "shared", kms_proxies)
    f = manager.sync.upload(b"abc", UploadOptions(filename=f"{uuid.uuid4().hex}.bin"))
    real = plain.hot_client.head_object(Bucket=plain.hot_bucket, Key=f.path)["ETag"].strip('"')
    assert real == hashlib.md5(b"abc").hexdigest()
    listed = next(store.iter_pages(StorageTier.HOT))
    assert [o.etag for o in listed] == [kms_proxies[0].kms.fake(real)]  # type: ignore[union-attr]
    with store.open(StorageTier.HOT, f.path) as fh:  # reads pinned to the rewritten ETag still work
        assert fh.read() == b"abc"
