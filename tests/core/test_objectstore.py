"""ObjectStore options beyond upstream: URL styles, storage classes, multipart copies, clients."""

from __future__ import annotations

import dataclasses
import os
import pickle
import string
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from django_s3strata.core.objectstore import ObjectStore, content_disposition, guess_content_type
from tests.conftest import Env, make_env
from tests.faults import FaultProxy


def offline(**kw: Any) -> ObjectStore:
    base: dict[str, Any] = dict(endpoint="s3.example.com", access_key="AK", secret_key="SK", hot_bucket="hot", cold_bucket="cold")
    base.update(kw)
    return ObjectStore(S3StrataConfig(**base))


def test_public_url_styles() -> None:
    assert offline().public_url(StorageTier.HOT, "public/a b/ü.txt") == "https://s3.example.com/hot/public/a%20b/%C3%BC.txt"
    assert (
        offline(port=9000, use_ssl=False).public_url(StorageTier.COLD, "public/x") == "http://s3.example.com:9000/cold/public/x"
    )
    assert offline(addressing_style="virtual").public_url(StorageTier.HOT, "public/x") == "https://hot.s3.example.com/public/x"
    cdn = offline(hot_public_base_url="https://cdn.example.com/assets/")
    assert cdn.public_url(StorageTier.HOT, "public/x y") == "https://cdn.example.com/assets/public/x%20y"
    assert cdn.public_url(StorageTier.COLD, "public/x") == "https://s3.example.com/cold/public/x"


_STORE = offline()


@given(st.text(st.sampled_from(string.printable) | st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_public_url_escapes_exactly_as_quote_does(key: str) -> None:
    # The fast test that lets most keys skip quote() must never let through one that quote() changes.
    assert _STORE.public_url(StorageTier.HOT, key) == "https://s3.example.com/hot/" + quote(key, safe="/")


def test_presigned_url_is_built_offline_with_region_and_style() -> None:
    url = offline(region="eu-west-1", addressing_style="virtual").presigned_url(StorageTier.HOT, "private/k", 60)
    assert url.startswith("https://hot.s3.example.com/private/k?")
    assert "eu-west-1%2Fs3%2Faws4_request" in url and "X-Amz-Expires=60" in url


def test_content_type_and_disposition_helpers() -> None:
    assert guess_content_type("photo.JPG") == "image/jpeg"
    assert guess_content_type("data.unknownext") == "application/octet-stream"
    assert content_disposition("attachment", 'naïve "q".pdf') == (
        "attachment; filename=\"na_ve _q_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22q%22.pdf"
    )


def test_cold_storage_class_is_applied_on_archive(moto_server: Any) -> None:
    env = make_env("shared", moto_server, moto_server, cold_storage_class="STANDARD_IA")
    fm = FileManager(env.config, InMemoryAdapter()).sync
    f = fm.upload(b"x", UploadOptions(hot_duration=0))
    assert "StorageClass" not in env.hot_client.head_object(Bucket=env.hot_bucket, Key=f.path)
    assert fm.archive_expired_hot_files() == 1
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=f.path)["StorageClass"] == "STANDARD_IA"
    direct = fm.upload(b"y", UploadOptions(tier="COLD"))
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=direct.path)["StorageClass"] == "STANDARD_IA"


def test_a_record_without_an_etag_is_copied_without_being_read_first(moto_server: Any) -> None:
    """One CopyObject a file (its answer tells the copy's ETag); only S3's 'too large' makes it read the object first."""
    env: Env = make_env("shared", moto_server, moto_server, part_copy_threshold=6 * 1024 * 1024)
    proxy = FaultProxy(moto_server.host, moto_server.port).start()
    try:
        config = dataclasses.replace(env.config, port=proxy.port)
        fm = FileManager(config, InMemoryAdapter()).sync
        small, large = b"s" * 1000, os.urandom(7 * 1024 * 1024)
        f, g = fm.upload(small, UploadOptions(filename="s.bin")), fm.upload(large, UploadOptions(filename="l.bin"))
        proxy.faults.reset()
        f = fm.set_tier(f, SetTierOptions(tier="COLD"))
        assert proxy.faults.ops() == ["CopyObject", "DeleteObject"]
        assert env.read("COLD", f.path) == small
        # S3 refuses one CopyObject above 5 GiB: then a HEAD, and the copy in parts (above the threshold).
        proxy.faults.reset()
        proxy.fail("CopyObject", fault="toolarge")
        g = fm.set_tier(g, SetTierOptions(tier="COLD"))
        ops = proxy.faults.ops()
        assert ops[:2] == ["CopyObject", "HeadObject"] and "UploadPartCopy" in ops and "CopyObject" not in ops[1:], ops
        assert env.read("COLD", g.path) == large and env.keys("HOT") == []
    finally:
        proxy.stop()


def test_large_copies_go_part_by_part_keeping_the_content_type(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env: Env = make_env("shared", moto_server, moto_server, part_copy_threshold=6 * 1024 * 1024)
    fm = FileManager(env.config, InMemoryAdapter()).sync
    # The in-memory record knows no ETag: read the object first, as for one above one CopyObject's 5 GiB.
    monkeypatch.setattr(fm.objectstore, "copy_unread", lambda *args: None)
    data = os.urandom(13 * 1024 * 1024)
    f = fm.upload(data, UploadOptions(filename="v.txt"))
    calls: list[str] = []
    client = fm.objectstore.client(StorageTier.COLD)
    client.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert calls.count("UploadPartCopy") == 2 and "CopyObject" not in calls
    # The source's HEAD (ours, then s3transfer's); none of the copy: its pinned parts verify it.
    assert calls.count("HeadObject") == 2
    assert env.read("COLD", cold.path) == data and env.keys("HOT") == []
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=cold.path)["ContentType"] == "text/plain; charset=utf-8"


def test_tiers_on_one_location_share_one_client_and_pickling_drops_clients() -> None:
    store = offline()
    assert store.same_location() and store.client(StorageTier.HOT) is store.client(StorageTier.COLD)
    split = ObjectStore(
        S3StrataConfig(
            hot=S3TierConfig("a.example", "AK", "SK", "hot"),
            cold=S3TierConfig("b.example", "AK", "SK", "cold"),
            advanced=S3StrataAdvancedOptions(max_concurrency=4),
        )
    )
    assert not split.same_location() and split.client(StorageTier.HOT) is not split.client(StorageTier.COLD)
    assert split.client(StorageTier.HOT).meta.config.max_pool_connections == 8
    clone = pickle.loads(pickle.dumps(split))
    assert clone._clients == {} and clone.client(StorageTier.COLD).meta.endpoint_url == "https://b.example"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "https://s3.example.com"])
@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize("key", ["private/a b+c.txt", "public/ü/é~x(1)!*'.png", "k"])
@pytest.mark.parametrize("disposition", [None, "attachment; filename*=UTF-8''r%C3%A9.pdf"])
@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2Vj//+session/token=="])
def test_presigned_urls_match_boto3_byte_for_byte(
    endpoint: str, style: str, key: str, disposition: str | None, token: str | None
) -> None:
    from datetime import UTC, datetime
    from urllib.parse import parse_qs, urlsplit

    import boto3
    from botocore.config import Config

    host = urlsplit(endpoint).hostname
    assert host is not None
    store = ObjectStore(
        S3StrataConfig(
            endpoint=host, port=urlsplit(endpoint).port or 443, use_ssl=endpoint.startswith("https"), access_key="AKID",
            secret_key="SECRET/+x", hot_bucket="my-bucket", cold_bucket="other", region="eu-west-1", addressing_style=style,
            session_token=token,
        )
    )  # fmt: skip
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="AKID", aws_secret_access_key="SECRET/+x", region_name="eu-west-1",
        aws_session_token=token, config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )  # fmt: skip
    params = {"Bucket": "my-bucket", "Key": key, **({"ResponseContentDisposition": disposition} if disposition else {})}
    theirs = client.generate_presigned_url("get_object", Params=params, ExpiresIn=600)
    client.close()
    their_query = parse_qs(urlsplit(theirs).query)
    when = datetime.strptime(their_query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    extra = {"response-content-disposition": disposition} if disposition else None
    ours = store._signer(StorageTier.HOT).presign_get(key, 600, extra, now=when)
    assert urlsplit(ours)[:3] == urlsplit(theirs)[:3]  # same scheme, host and path
    assert parse_qs(urlsplit(ours).query) == their_query
    assert ours == theirs  # byte for byte: the same parameter order and escaping, the token included
    assert (token is not None) == ("X-Amz-Security-Token=" in ours)
