"""core.direct: the part plan, the checks made before anything is signed, and the signed POST policy."""

from __future__ import annotations

import base64
import json

import pytest

from django_s3strata.core import FileManager, FileTooLargeError, InvalidOptionError, StorageTier
from django_s3strata.core.direct import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    PART_BATCH,
    cors_rule,
    part_sizes,
    presigned_post,
    sign_parts,
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "part", "expected"),
    [
        (11 * MiB, 5 * MiB, [5 * MiB, 5 * MiB, MiB]),
        (10 * MiB, 5 * MiB, [5 * MiB, 5 * MiB]),
        (3, 16 * MiB, [3]),
        (7 * MiB, MiB, [MIN_PART_SIZE, 2 * MiB]),  # parts are never below S3's 5 MiB minimum
    ],
)
def test_part_sizes(size: int, part: int, expected: list[int]) -> None:
    assert part_sizes(size, part) == expected


def test_part_sizes_grow_to_fit_ten_thousand_parts() -> None:
    size = 5 * 1024**4  # 5 TiB, S3's largest object
    sizes = part_sizes(size, 16 * MiB)
    assert len(sizes) <= MAX_PARTS and sum(sizes) == size


def test_an_empty_file_cannot_be_multipart() -> None:
    with pytest.raises(InvalidOptionError, match="at least one byte"):
        part_sizes(0, 5 * MiB)


@pytest.mark.parametrize("expires_in", [0, -1, 7 * 86400 + 1, 1.5, True])
def test_post_expiry_is_checked(manager: FileManager, expires_in: object) -> None:
    with pytest.raises(InvalidOptionError, match="expires_in"):
        presigned_post(
            manager.objectstore, StorageTier.HOT, "private/a", size=1, content_type="text/plain", expires_in=expires_in
        )  # type: ignore[arg-type]


def test_post_size_is_checked(manager: FileManager) -> None:
    store = manager.objectstore
    with pytest.raises(FileTooLargeError):
        presigned_post(store, StorageTier.HOT, "private/a", size=11, content_type="text/plain", expires_in=60, max_size=10)
    with pytest.raises(FileTooLargeError):  # one POST carries at most 5 GiB
        presigned_post(store, StorageTier.HOT, "private/a", size=5 * 1024**3 + 1, content_type="text/plain", expires_in=60)
    with pytest.raises(InvalidOptionError, match="size=-1"):
        presigned_post(store, StorageTier.HOT, "private/a", size=-1, content_type="text/plain", expires_in=60)


def test_post_policy_pins_key_size_and_type(manager: FileManager) -> None:
    post = presigned_post(
        manager.objectstore, StorageTier.HOT, "private/x-a.txt", size=42, content_type="text/plain", expires_in=60
    )
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 42, 42] in conditions
    assert {"Content-Type": "text/plain; charset=utf-8"} in conditions and {"key": "private/x-a.txt"} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)


@pytest.mark.parametrize("origins", [[], ["app.example.com"], ["ftp://x"]])
def test_cors_origins_are_checked(origins: list[str]) -> None:
    with pytest.raises(InvalidOptionError, match="scheme://host"):
        cors_rule(origins)


def test_a_filename_variable_does_not_unpin_the_key(manager: FileManager) -> None:
    """botocore turns the key condition into starts-with for "${filename}" keys: the exact key is pinned again."""
    post = presigned_post(
        manager.objectstore, StorageTier.HOT, "private/x-${filename}", size=1, content_type="text/plain", expires_in=60
    )
    conditions = json.loads(base64.b64decode(post.fields["policy"]))["conditions"]
    assert {"key": "private/x-${filename}"} in conditions


def test_post_policy_pins_the_disposition(manager: FileManager) -> None:
    post = presigned_post(
        manager.objectstore,
        StorageTier.HOT,
        "private/x-a.html",
        size=3,
        content_type="text/html",
        content_disposition="attachment",
        expires_in=60,
    )
    conditions = json.loads(base64.b64decode(post.fields["policy"]))["conditions"]
    assert {"Content-Disposition": "attachment"} in conditions and post.fields["Content-Disposition"] == "attachment"


def test_parts_stay_within_s3_limits() -> None:
    with pytest.raises(FileTooLargeError):
        part_sizes(10**15, 16 * MiB)  # over S3's 5 TiB: no 100 GB parts
    sizes = part_sizes(20 * 1024**3, 10 * 1024**3)
    assert max(sizes) == MAX_PART_SIZE and len(sizes) == 4
    sizes = part_sizes(MAX_OBJECT_SIZE, 16 * MiB)
    assert len(sizes) <= MAX_PARTS and max(sizes) <= MAX_PART_SIZE and sum(sizes) == MAX_OBJECT_SIZE


@pytest.mark.parametrize(("first", "last"), [(0, 1), (2, 1), (1, PART_BATCH + 1), (1, 4), ("1", 2), (True, 2)])
def test_part_urls_are_signed_in_bounded_batches(manager: FileManager, first: object, last: object) -> None:
    with pytest.raises(InvalidOptionError):
        sign_parts(manager.objectstore, StorageTier.HOT, "private/a", "upload", [MiB] * 3, first, last, 60)  # type: ignore[arg-type]
    assert len(sign_parts(manager.objectstore, StorageTier.HOT, "private/a", "upload", [MiB] * 3, 2, 3, 60)) == 2


def test_a_presigned_put_signs_every_pinned_header(manager: FileManager) -> None:
    """Every header a POST policy would pin is a signed header of the PUT: the provider refuses the upload without it."""
    import requests

    from django_s3strata.core import StorageError

    store = manager.objectstore
    headers = {
        "Content-Type": "text/html",
        "Content-Disposition": "attachment",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-meta-owner": "alice",
        "x-amz-server-side-encryption": "AES256",
    }
    url, sent = store.presigned_put(StorageTier.HOT, "private/x-a.html", headers, 3, 60)
    assert sent == headers
    signed = url.split("X-Amz-SignedHeaders=")[1].split("&")[0].split("%3B")
    assert signed == sorted([*(h.lower() for h in headers), "content-length", "host"])
    assert requests.put(url, data=b"<p>", headers=headers, timeout=10).status_code == 200
    landed = store.client(StorageTier.HOT).head_object(Bucket=store.tier(StorageTier.HOT).bucket, Key="private/x-a.html")
    assert (landed["ContentLength"], landed["ContentDisposition"], landed["StorageClass"]) == (3, "attachment", "STANDARD_IA")
    assert landed["Metadata"] == {"owner": "alice"} and landed["ServerSideEncryption"] == "AES256"
    # The POST forms of tags (XML) and of the bucket-key flag become their PUT headers.
    fields = {
        "Content-Type": "application/pdf",
        "Cache-Control": "max-age=60",
        "Expires": "Wed, 21 Oct 2037 07:28:00 GMT",
        "tagging": "<Tagging><TagSet><Tag><Key>team</Key><Value>a b/c</Value></Tag></TagSet></Tagging>",
        "x-amz-server-side-encryption-bucket-key-enabled": "false",
    }
    url, sent = store.presigned_put(StorageTier.HOT, "private/x-b.pdf", fields, 3, 60)
    assert "x-amz-tagging" in url and "x-amz-server-side-encryption-bucket-key-enabled" in url
    assert sent == {**{k: v for k, v in fields.items() if k != "tagging"}, "x-amz-tagging": "team=a%20b%2Fc"}
    assert requests.put(url, data=b"pdf", headers=sent, timeout=10).status_code == 200
    client, bucket = store.client(StorageTier.HOT), store.tier(StorageTier.HOT).bucket
    landed = client.head_object(Bucket=bucket, Key="private/x-b.pdf")
    assert landed["CacheControl"] == "max-age=60" and landed["ExpiresString"] == fields["Expires"]
    assert client.get_object_tagging(Bucket=bucket, Key="private/x-b.pdf")["TagSet"] == [{"Key": "team", "Value": "a b/c"}]
    with pytest.raises(StorageError, match="'x-amz-no-such-thing' cannot be signed into a presigned PUT"):
        store.presigned_put(StorageTier.HOT, "private/x-b", {"x-amz-no-such-thing": "1"}, 1, 60)


def test_put_expiry_and_size_are_checked(manager: FileManager) -> None:
    from django_s3strata.core.direct import presigned_put

    store = manager.objectstore
    with pytest.raises(InvalidOptionError, match="expires_in"):
        presigned_put(store, StorageTier.HOT, "private/a", size=1, content_type="text/plain", expires_in=0)
    with pytest.raises(FileTooLargeError):  # one PUT carries at most 5 GiB, as one POST
        presigned_put(store, StorageTier.HOT, "private/a", size=5 * 1024**3 + 1, content_type="text/plain", expires_in=60)
    target = presigned_put(store, StorageTier.HOT, "private/a", size=0, content_type="application/pdf", expires_in=60)
    assert target.headers == {"Content-Type": "application/pdf"} and "X-Amz-Expires=60" in target.url
