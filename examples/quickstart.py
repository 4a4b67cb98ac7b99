"""The framework-free quick start, run against an S3 server started in this process (no accounts needed).

Run it with ``.venv/bin/python examples/quickstart.py`` (``./dev demo`` runs the example site).
With S3STRATA_ENDPOINT (and _PORT, _USE_SSL, _ACCESS_KEY,
_SECRET_KEY, _HOT_BUCKET, _COLD_BUCKET) set, it uses that S3 server instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.request

from django_s3strata.core import (
    FileManager,
    InMemoryAdapter,
    S3StrataConfig,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)


def embedded_s3() -> S3StrataConfig:
    """Start moto's S3 server on a free port of 127.0.0.1 and create both buckets."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    config = S3StrataConfig(
        endpoint=host,
        port=port,
        use_ssl=False,
        access_key="demo",
        secret_key="demo-secret",
        hot_bucket="demo-hot",
        cold_bucket="demo-cold",
    )
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="demo",
        aws_secret_access_key="demo-secret",
        region_name="us-east-1",
    )
    for bucket in ("demo-hot", "demo-cold"):
        client.create_bucket(Bucket=bucket)
    return config


def configured_s3() -> S3StrataConfig | None:
    """Return a config from S3STRATA_* environment variables, or None when none are set."""
    env = os.environ
    if not env.get("S3STRATA_ENDPOINT"):
        return None
    return S3StrataConfig(
        endpoint=env["S3STRATA_ENDPOINT"],
        port=int(env.get("S3STRATA_PORT", "443")),
        use_ssl=env.get("S3STRATA_USE_SSL", "true").lower() in ("1", "true", "yes"),
        access_key=env.get("S3STRATA_ACCESS_KEY"),
        secret_key=env.get("S3STRATA_SECRET_KEY"),
        hot_bucket=env.get("S3STRATA_HOT_BUCKET"),
        cold_bucket=env.get("S3STRATA_COLD_BUCKET"),
    )


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (our own server)
        data: bytes = resp.read()
        return data


async def main() -> None:
    config = configured_s3() or embedded_s3()
    file_manager = FileManager(config, InMemoryAdapter())
    for tier in StorageTier:
        file_manager.objectstore.apply_public_read_policy(tier)

    file = await file_manager.upload(b"Hello, World!", UploadOptions(filename="hello.txt", hot_duration=0))
    print(f"uploaded   {file.filename!r} as record {file.id}: {file.storage_tier} {file.path}")
    url = await file_manager.get_url(file)
    print(f"private    {url[:100]}...")
    print(f"           downloads {fetch(url)!r}")

    file = await file_manager.set_visibility(file, SetVisibilityOptions(visibility="PUBLIC"))
    url = await file_manager.get_url(file)
    print(f"public     {url}")
    print(f"           downloads {fetch(url)!r}")

    archived = await file_manager.archive_expired_hot_files()
    file = await file_manager.get_by_id(file.id) or file
    print(f"archived   {archived} expired HOT file(s); record {file.id} is now {file.storage_tier}")

    file = await file_manager.set_tier(file, SetTierOptions(tier=StorageTier.HOT, hot_duration=3600))
    print(f"promoted   back to {file.storage_tier} until {file.hot_until:%Y-%m-%d %H:%M} UTC")

    orphans = await file_manager.list_orphan_objects()
    print(f"orphans    {len(orphans)}")
    await file_manager.close()


if __name__ == "__main__":
    asyncio.run(main())
