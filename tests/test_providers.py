"""S3 providers' gaps: profiles of R2, B2 and GCS emulated by the fault proxy in front of SeaweedFS, and the client settings.

SeaweedFS checks signatures; the proxy answers 501 NotImplemented for the operations a provider
lacks (tests/faults.py, PROVIDERS) and refuses botocore's optional checksum headers where the
provider did. Each profile runs direct uploads (PUT), library uploads, moves, deletes and an
orphan sweep through it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_s3strata import get_file_manager, operations
from django_s3strata.core import (
    ConfigurationError,
    S3StrataAdvancedOptions,
    S3StrataConfig,
    S3TierConfig,
    SetVisibilityOptions,
    StorageError,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.clients import client_options
from django_s3strata.core.config import resolve_tier
from django_s3strata.core.objectstore import ObjectStore
from django_s3strata.models import PhysicalFile
from tests.conftest import Env, settings_dict
from tests.faults import PROVIDERS, FaultProxy
from tests.s3server import ACCESS_KEY, SECRET_KEY, MotoS3Server

START, FINALIZE = "/s3strata/uploads/", "/s3strata/uploads/finalize/"


@pytest.fixture(scope="module")
def weed_proxy(weed: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the SeaweedFS server (which checks the signatures behind it)."""
    proxy = FaultProxy(weed.host, weed.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def provider_settings(weed: Any, weed_proxy: FaultProxy, settings: Any) -> Iterator[tuple[Env, FaultProxy]]:
    """settings.S3STRATA on fresh SeaweedFS buckets reached through the proxy, direct uploads by PUT."""
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    weed.create_bucket(hot)
    weed.create_bucket(cold)
    config = S3StrataConfig(
        endpoint=weed_proxy.host,
        port=weed_proxy.port,
        use_ssl=False,
        access_key=weed.access_key,
        secret_key=weed.secret_key,
        hot_bucket=hot,
        cold_bucket=cold,
    )
    settings.S3STRATA = {**settings_dict(config), "DIRECT_UPLOAD_METHOD": "put"}
    client = weed.client()  # behind the proxy's back
    weed_proxy.faults.reset()
    yield Env(config, hot, cold, client, client), weed_proxy
    weed_proxy.faults.reset()


def uploader() -> Client:
    user = User.objects.create_user(f"u-{uuid.uuid4().hex[:8]}", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="add_physicalfile"))
    client = Client()
    client.force_login(user)
    return client


def call(client: Client, url: str, **data: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(url, data=json.dumps(data), content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.seaweed
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["r2", "b2", "gcs"])
def test_a_provider_profile_runs_every_operation(
    provider: str, provider_settings: tuple[Env, FaultProxy], settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env, proxy = provider_settings
    faults, gaps = proxy.faults, PROVIDERS[provider].unsupported
    faults.emulate(provider)
    client = uploader()

    # A browser upload: a POST policy where the provider has POST Object, else refused as the provider would.
    body = b"%PDF-1.7 straight to the bucket"
    if "PostObject" in gaps:
        settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": "post"}
        _, grant = call(client, START, filename="report.pdf", size=len(body), content_type="application/pdf")
        posted = requests.post(grant["url"], data=grant["fields"], files={"file": ("report.pdf", body)}, timeout=30)
        assert posted.status_code == 501 and b"NotImplemented" in posted.content
        settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": "put"}
    # With DIRECT_UPLOAD_METHOD "put", every provider takes it.
    status, grant = call(client, START, filename="report.pdf", size=len(body), content_type="application/pdf")
    assert status == 200 and grant["method"] == "put" and grant["headers"] == {"Content-Type": "application/pdf"}
    assert requests.put(grant["url"], data=body, headers=grant["headers"], timeout=30).status_code == 200
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    direct = PhysicalFile.objects.get(pk=done["id"])
    assert env.read("HOT", direct.path) == body

    # Library uploads (PutObject with the default checksum setting, which the provider accepts).
    sync = get_file_manager().sync
    expiring = [sync.upload(f"file {i}".encode(), UploadOptions(filename=f"f{i}.txt", hot_duration=0)) for i in range(3)]
    # Moves: archival (server-side copies; the sources go in one bulk delete) and a visibility change.
    caplog.set_level(logging.INFO, logger="django_s3strata.core.objectstore")
    assert operations.archive_expired().moved == 3
    assert sorted(env.keys("COLD")) == sorted(f.path for f in PhysicalFile.objects.filter(storage_tier="COLD"))
    assert [env.read("COLD", PhysicalFile.objects.get(pk=f.pk).path) for f in expiring] == [b"file 0", b"file 1", b"file 2"]
    direct = sync.set_visibility(direct, SetVisibilityOptions(visibility="PUBLIC"))
    assert env.keys("HOT") == [direct.path] and direct.path.startswith("public/")
    # Deletes: the file, then the orphans a sweep finds.
    sync.delete(direct)
    env.put("HOT", "private/lost.bin", b"12345")
    env.put("COLD", "private/lost.bin", b"123")
    swept = operations.sweep_orphans("delete", older_than=0)
    assert (swept.found, swept.deleted, swept.failed) == (2, 2, 0)
    assert env.keys("HOT") == [] and len(env.keys("COLD")) == 3

    # What the provider lacks was asked for and answered as the provider would; nothing else failed.
    emulated = {seen.op for seen in faults.log if seen.outcome == "emulated"}
    assert emulated == gaps & {"PostObject", "DeleteObjects"}
    if "DeleteObjects" in gaps:
        notices = [r.getMessage() for r in caplog.records if "does not implement DeleteObjects" in r.getMessage()]
        assert len(notices) == 1 and notices[0].endswith("the HOT tier deletes one object per request.")
    assert all(seen.status is None or seen.status < 300 or seen.outcome == "emulated" for seen in faults.log), [
        (seen.op, seen.status) for seen in faults.log if seen.status and seen.status >= 300
    ]


@pytest.mark.seaweed
@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["r2", "b2"])
def test_botocore_checksums_are_what_those_providers_refused(provider: str, provider_settings: tuple[Env, FaultProxy]) -> None:
    """Why checksums default to "when_required" off AWS: "when_supported" sends CRC32 headers with every upload."""
    env, proxy = provider_settings
    proxy.faults.emulate(provider)
    config = dataclasses.replace(env.config, advanced=S3StrataAdvancedOptions(request_checksum_calculation="when_supported"))
    with pytest.raises(StorageError) as refused:
        ObjectStore(config).put(StorageTier.HOT, "private/with-crc32.txt", b"checksummed")
    assert refused.value.code == PROVIDERS[provider].refuses_checksums[1]  # type: ignore[index]
    # The default: no optional checksum headers, so the same upload lands.
    ObjectStore(env.config).put(StorageTier.HOT, "private/plain.txt", b"plain")
    assert env.read("HOT", "private/plain.txt") == b"plain"


@pytest.mark.seaweed
def test_bulk_delete_falls_back_once_per_tier(weed: Any, weed_proxy: FaultProxy, caplog: pytest.LogCaptureFixture) -> None:
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    weed.create_bucket(hot)
    weed.create_bucket(cold)
    raw = weed.client()
    config = S3StrataConfig(
        endpoint=weed_proxy.host,
        port=weed_proxy.port,
        use_ssl=False,
        access_key=weed.access_key,
        secret_key=weed.secret_key,
        hot_bucket=hot,
        cold_bucket=cold,
    )
    store = ObjectStore(config)
    faults = weed_proxy.faults
    faults.reset()
    keys = [f"private/k{i}" for i in range(5)]
    try:
        faults.emulate("gcs")
        caplog.set_level(logging.INFO, logger="django_s3strata.core.objectstore")
        for key in keys:
            raw.put_object(Bucket=hot, Key=key, Body=b"x")
        store.delete_many(StorageTier.HOT, keys[:3])
        store.delete_many(StorageTier.HOT, keys[3:])
        assert raw.list_objects_v2(Bucket=hot).get("KeyCount", 0) == 0
        # One DeleteObjects answered NotImplemented, remembered: every key then went by DeleteObject.
        assert (faults.count("DeleteObjects"), faults.count("DeleteObject")) == (1, 5)
        assert sum("does not implement DeleteObjects" in r.getMessage() for r in caplog.records) == 1
        assert all(r.levelno == logging.INFO for r in caplog.records if "DeleteObjects" in r.getMessage())
        # A key the provider refuses to delete is named, as DeleteObjects' errors are.
        raw.put_object(Bucket=hot, Key="private/stuck", Body=b"x")
        # Both refused: the single deletes run in parallel, so which request comes first varies; the
        # error names the first key in the order given.
        faults.fail("DeleteObject", fault="403", times=2)
        with pytest.raises(StorageError, match=r"2 of 2 objects were not deleted; first: 'private/stuck'"):
            store.delete_many(StorageTier.HOT, ["private/stuck", "private/gone"])
        # The other tier has its own client state, and a provider with DeleteObjects keeps using it.
        faults.reset()
        store.delete_many(StorageTier.COLD, keys)
        assert (faults.count("DeleteObjects"), faults.count("DeleteObject")) == (1, 0)
    finally:
        faults.reset()


# -- the botocore Config passthrough ------------------------------------------------------------------


def _tier(endpoint: str = "127.0.0.1", client_config: dict[str, Any] | None = None, **advanced: Any) -> Any:
    config = S3StrataConfig(
        hot=S3TierConfig(endpoint, ACCESS_KEY, SECRET_KEY, "hot", client_config=client_config),
        cold=S3TierConfig(endpoint, ACCESS_KEY, SECRET_KEY, "cold"),
        advanced=S3StrataAdvancedOptions(**advanced),
    )
    return resolve_tier(config, "HOT"), config.advanced


@pytest.mark.parametrize(
    ("endpoint", "advanced", "client_config", "expected"),
    [
        ("s3.eu-west-1.amazonaws.com", {}, None, "when_supported"),
        ("s3.cn-north-1.amazonaws.com.cn", {}, None, "when_supported"),
        ("abc123.r2.cloudflarestorage.com", {}, None, "when_required"),
        ("storage.googleapis.com", {}, None, "when_required"),
        ("127.0.0.1", {"request_checksum_calculation": "when_supported"}, None, "when_supported"),
        ("s3.amazonaws.com", {}, {"request_checksum_calculation": "when_required"}, "when_required"),
    ],
)
def test_checksums_default_to_what_the_endpoint_accepts(
    endpoint: str, advanced: dict[str, Any], client_config: dict[str, Any] | None, expected: str
) -> None:
    config, kwargs = client_options(*_tier(endpoint, client_config, **advanced))
    assert config.request_checksum_calculation == expected and kwargs == {}


def test_client_config_merges_over_the_librarys_settings(tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked until a TLS handshake")
    given = {
        "connect_timeout": 2,
        "max_pool_connections": 3,
        "retries": {"mode": "adaptive"},
        "s3": {"payload_signing_enabled": True},
        "proxies": {"https": "http://proxy.internal:3128"},
        "verify": str(bundle),
    }
    config, kwargs = client_options(*_tier(client_config=given, max_attempts=4))
    assert (config.connect_timeout, config.max_pool_connections, config.read_timeout) == (2, 3, 60.0)
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert config.s3 == {"addressing_style": "path", "payload_signing_enabled": True}
    assert config.proxies == {"https": "http://proxy.internal:3128"} and kwargs == {"verify": str(bundle)}
    assert client_options(*_tier(client_config={"retries": {"max_attempts": 2}}))[0].retries == {
        "mode": "standard",
        "max_attempts": 2,
    }


def test_client_config_reaches_the_client(moto_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real effects: a proxy that carries every request, a read timeout and a retry count per tier."""
    bucket = f"hot-{uuid.uuid4().hex[:10]}"
    moto_server.client().create_bucket(Bucket=bucket)
    proxy = FaultProxy(moto_server.host, moto_server.port).start()
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy")
    try:
        # Nothing listens on port 9: only the proxy setting gets the requests to moto.
        tier = S3TierConfig(
            "127.0.0.1",
            ACCESS_KEY,
            SECRET_KEY,
            bucket,
            port=9,
            use_ssl=False,
            client_config={
                "proxies": {"http": f"http://{proxy.host}:{proxy.port}"},
                "read_timeout": 0.5,
                "retries": {"total_max_attempts": 1},
            },
        )
        config = S3StrataConfig(
            hot=tier, cold=S3TierConfig(moto_server.host, ACCESS_KEY, SECRET_KEY, bucket, port=moto_server.port, use_ssl=False)
        )
        store = ObjectStore(config)
        store.put(StorageTier.HOT, "private/via-proxy.txt", b"through the proxy")
        assert proxy.faults.ops() == ["PutObject"]
        assert moto_server.client().get_object(Bucket=bucket, Key="private/via-proxy.txt")["Body"].read() == b"through the proxy"
        proxy.faults.stall_seconds = 3
        proxy.faults.fail("HeadObject", fault="stall")
        began = time.monotonic()
        with pytest.raises(StorageError):
            store.head(StorageTier.HOT, "private/via-proxy.txt")
        assert time.monotonic() - began < 2  # one attempt, cut at the tier's 0.5 s read timeout
        assert proxy.faults.count("HeadObject") == 1
    finally:
        proxy.stop()


def test_unknown_client_config_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"'proxy'\. Did you mean 'proxies'"):
        _tier(client_config={"proxy": {"https": "http://p:3128"}})


def test_a_proxy_password_never_shows_in_a_repr() -> None:
    given = {"proxies": {"https": "http://user:PROXY-SECRET@proxy.internal:3128"}}
    resolved, _ = _tier(client_config=given)
    config = S3StrataConfig(client_config=given, endpoint="e", access_key="a", secret_key="s", hot_bucket="h", cold_bucket="c")
    assert "PROXY-SECRET" not in repr(resolved) + repr(config) + repr(S3TierConfig("e", client_config=given))
