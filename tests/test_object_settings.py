"""Encryption and object parameters through Django: settings, direct uploads, archival and verify on a KMS-style bucket."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from django_s3strata import conf, operations
from django_s3strata.core import S3StrataConfig, S3TierConfig, SetTierOptions, UploadOptions
from django_s3strata.core.exceptions import ConfigurationError
from django_s3strata.models import PhysicalFile
from django_s3strata.services import get_file_manager
from tests.conftest import Env, settings_dict
from tests.faults import FaultProxy, Faults, KmsBucket
from tests.s3server import ACCESS_KEY, SECRET_KEY, MotoS3Server
from tests.test_direct_uploads import FINALIZE, START, call, post_to_s3, put_parts, uploader

pytestmark = pytest.mark.django_db(transaction=True)
KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/s3strata-test"
PARAMETERS = {"CacheControl": "max-age=60", "ContentLanguage": "fr", "Metadata": {"origin": "tests"}, "Tagging": "team=web"}


def per_file(filename: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The OBJECT_PARAMETERS_HOOK of these tests: the file's name in its metadata."""
    return {**parameters, "Metadata": {**parameters.get("Metadata", {}), "name": filename}}


@pytest.fixture
def kms(env: Env, settings: Any, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[tuple[Env, Faults]]:
    """settings.S3STRATA on ``env``'s buckets, through proxies that answer like SSE-KMS buckets."""
    faults = Faults()
    faults.kms = KmsBucket(KEY_ID)
    a = FaultProxy(moto_server.host, moto_server.port, faults).start()
    b = FaultProxy(moto_server_b.host, moto_server_b.port, faults).start()
    tier = {"server_side_encryption": "aws:kms", "sse_kms_key_id": KEY_ID, "checksum_algorithm": "SHA256"}
    if env.config.hot is None:
        config = S3StrataConfig(
            endpoint=a.host, port=a.port, use_ssl=False, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
            hot_bucket=env.hot_bucket, cold_bucket=env.cold_bucket, **tier,
        )  # fmt: skip
    else:
        config = S3StrataConfig(
            hot=S3TierConfig(a.host, ACCESS_KEY, SECRET_KEY, env.hot_bucket, port=a.port, use_ssl=False, **tier),
            cold=S3TierConfig(b.host, ACCESS_KEY, SECRET_KEY, env.cold_bucket, port=b.port, use_ssl=False, **tier),
        )
    settings.S3STRATA = settings_dict(config)
    yield env, faults
    a.stop()
    b.stop()


def verify(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # problems found: the JSON says which
        call_command("s3strata_verify", "--json", *args, stdout=out, stderr=io.StringIO())
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def real_etag(env: Env, tier: str, key: str) -> str:
    return str(env.client(tier).head_object(Bucket=env.bucket(tier), Key=key)["ETag"]).strip('"')


def test_settings_name_the_bad_key(settings: Any) -> None:
    base = {"ENDPOINT": "s3.example.com", "ACCESS_KEY": "k", "SECRET_KEY": "s", "HOT_BUCKET": "h", "COLD_BUCKET": "c"}
    settings.S3STRATA = {**base, "OBJECT_PARAMETERS": {"CacheControl": "x", "ACL": "public-read"}}
    with pytest.raises(ConfigurationError, match="Unknown object parameter 'ACL'"):
        conf.get_settings().layout.tiers
    settings.S3STRATA = {**base, "ADVANCED": {"OBJECT_PARAMETERS_HOOK": "tests.nowhere.hook"}}
    with pytest.raises(ConfigurationError, match=r"OBJECT_PARAMETERS_HOOK.*cannot be imported"):
        conf.get_settings()
    settings.S3STRATA = {**base, "ADVANCED": {"OBJECT_PARAMETERS_HOOK": "tests.test_object_settings.per_file"}}
    assert conf.get_settings().config.advanced.object_parameters_hook is per_file


def test_kms_bucket_upload_moves_archival_and_verify(kms: tuple[Env, Faults]) -> None:
    env, _ = kms
    sync = get_file_manager().sync
    files = [sync.upload(f"kms file {i}".encode(), UploadOptions(filename=f"k{i}.txt", hot_duration=0)) for i in range(3)]
    rows = {f.pk: PhysicalFile.objects.get(pk=f.pk) for f in files}
    for row in rows.values():
        assert row.etag != real_etag(env, "HOT", row.path)  # what the bucket answered: not the MD5
    summary = operations.archive_expired()
    assert (summary.moved, summary.failed) == (3, 0)
    for i, f in enumerate(files):
        row = PhysicalFile.objects.get(pk=f.pk)
        assert row.storage_tier == "COLD" and env.read("COLD", row.path) == f"kms file {i}".encode()
        assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=row.path)["ServerSideEncryption"] == "aws:kms"
    moved = sync.set_tier(PhysicalFile.objects.get(pk=files[0].pk), SetTierOptions(tier="HOT"))
    assert env.read("HOT", moved.path) == b"kms file 0"
    result = verify()
    assert (result["ok"], result["problems"]) == (3, 0), result  # every row's ETag is its object's


def test_verify_and_moves_still_catch_changed_objects(kms: tuple[Env, Faults]) -> None:
    env, _ = kms
    sync = get_file_manager().sync
    same, longer = (sync.upload(b"original bytes", UploadOptions(filename=f"{n}.bin")) for n in ("same", "longer"))
    env.put("HOT", same.path, b"replaced bytes")  # behind the library's back, the same size
    env.put("HOT", longer.path, b"replaced by longer bytes")
    result = verify()
    assert [m["id"] for m in result["size_mismatch"]] == [longer.pk]
    # With SSE-KMS no MD5 tells other bytes from a stale row: reported, and recorded only with --repair.
    assert [m["id"] for m in result["etag_mismatch"]] == [same.pk] and result["problems"] == 2
    assert verify("--repair")["etags_corrected"] == 1
    row = PhysicalFile.objects.get(pk=same.pk)
    assert row.etag == get_file_manager().objectstore.require(row.storage_tier, row.path).etag
    # A move from a row whose object changed copies what is there now, and the row learns the new ETag.
    moved = sync.set_tier(PhysicalFile.objects.get(pk=longer.pk), SetTierOptions(tier="COLD"))
    assert env.read("COLD", moved.path) == b"replaced by longer bytes"
    assert (
        PhysicalFile.objects.get(pk=longer.pk).etag == get_file_manager().objectstore.require(moved.storage_tier, moved.path).etag
    )


def test_verify_tells_changed_bytes_where_etags_are_md5s(s3strata_settings: Env) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"original bytes", UploadOptions(filename="a.bin"))
    env.put("HOT", f.path, b"replaced bytes")
    result = verify("--repair")
    assert [m["id"] for m in result["changed"]] == [f.pk] and result["etags_corrected"] == 0 and result["problems"] == 1


def test_a_stale_row_etag_is_corrected_by_the_next_move(s3strata_settings: Env) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"bytes", UploadOptions(filename="a.bin"))
    PhysicalFile.objects.filter(pk=f.pk).update(etag="0" * 32)  # as a row from before moves recorded ETags
    moved = get_file_manager().sync.set_tier(PhysicalFile.objects.get(pk=f.pk), SetTierOptions(tier="COLD"))
    assert PhysicalFile.objects.get(pk=f.pk).etag == real_etag(env, "COLD", moved.path)


@pytest.mark.parametrize("env", ["shared"], indirect=True)
@pytest.mark.parametrize("size", [20, 7 * 1024 * 1024], ids=["post", "multipart"])
def test_direct_uploads_pin_encryption_and_parameters(s3strata_settings: Env, settings: Any, size: int) -> None:
    env = s3strata_settings
    settings.S3STRATA = {
        **settings.S3STRATA,
        "SERVER_SIDE_ENCRYPTION": "AES256",
        "OBJECT_PARAMETERS": PARAMETERS,
        "ADVANCED": {"OBJECT_PARAMETERS_HOOK": "tests.test_object_settings.per_file"},
        "DIRECT_UPLOAD_MULTIPART_THRESHOLD": 6 * 1024 * 1024,
        "DIRECT_UPLOAD_PART_SIZE": 5 * 1024 * 1024,
    }
    client = uploader()
    body = b"n" * size
    status, grant = call(client, START, filename="notes.txt", size=size, content_type="text/plain")
    assert status == 200, grant
    if grant["method"] == "post":
        fields = grant["fields"]
        assert (fields["Cache-Control"], fields["x-amz-meta-name"], fields["x-amz-server-side-encryption"]) == (
            "max-age=60",
            "notes.txt",
            "AES256",
        )
        assert post_to_s3(grant, body).status_code in (200, 201, 204)
    else:
        assert set(put_parts(grant, body)) == {200}
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    head = env.hot_client.head_object(Bucket=env.hot_bucket, Key=grant["key"])
    # moto keeps no encryption from a POST's fields: the field is pinned above, SeaweedFS applies it (below).
    assert (head["CacheControl"], head.get("ServerSideEncryption", "AES256")) == ("max-age=60", "AES256")
    # S3's POST Object takes no Content-Language field: only the multipart start sets it (docs).
    assert head.get("ContentLanguage") == ("fr" if grant["method"] == "multipart" else None)
    assert head["Metadata"] == {"origin": "tests", "name": "notes.txt"}
    assert head["ContentType"] == "text/plain; charset=utf-8"
    tags = env.hot_client.get_object_tagging(Bucket=env.hot_bucket, Key=grant["key"])["TagSet"]
    assert tags == [{"Key": "team", "Value": "web"}]
    assert (
        requests.get(
            env.hot_client.generate_presigned_url("get_object", Params={"Bucket": env.hot_bucket, "Key": grant["key"]}),
            timeout=10,
        ).content
        == body
    )


@pytest.mark.seaweed
def test_seaweedfs_keeps_encryption_and_parameters(seaweed_settings: Env, settings: Any) -> None:
    """SeaweedFS checks signatures and POST policies: every pinned field must be what it accepts."""
    env = seaweed_settings
    settings.S3STRATA = {
        **settings.S3STRATA,
        "SERVER_SIDE_ENCRYPTION": "AES256",
        "CHECKSUM_ALGORITHM": "SHA256",
        "OBJECT_PARAMETERS": PARAMETERS,
    }
    sync = get_file_manager().sync
    f = sync.upload(b"on seaweed", UploadOptions(filename="w.txt"))
    f = sync.set_tier(f, SetTierOptions(tier="COLD"))
    head = env.cold_client.head_object(Bucket=env.cold_bucket, Key=f.path)
    assert (head["CacheControl"], head["ContentLanguage"], head["Metadata"]) == ("max-age=60", "fr", {"origin": "tests"})
    assert env.read("COLD", f.path) == b"on seaweed"
    client = uploader()
    status, grant = call(client, START, filename="d.txt", size=4, content_type="text/plain")
    assert status == 200, grant
    # Pinned in the policy: a form without one of them is refused (SeaweedFS checks POST policies; moto does not).
    assert post_to_s3(grant, b"data", {k: v for k, v in grant["fields"].items() if k != "Cache-Control"}).status_code == 403
    answer = post_to_s3(grant, b"data")
    assert answer.status_code in (200, 201, 204), answer.text
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    head = env.hot_client.head_object(Bucket=env.hot_bucket, Key=grant["key"])
    assert (head["CacheControl"], head["Metadata"]) == ("max-age=60", {"origin": "tests"})
    assert head["ServerSideEncryption"] == "AES256"
    tags = env.hot_client.get_object_tagging(Bucket=env.hot_bucket, Key=grant["key"])["TagSet"]
    assert tags == [{"Key": "team", "Value": "web"}]
