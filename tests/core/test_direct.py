"""core.direct: the part plan, the checks made before anything is signed, and the signed POST policy."""

from __future__ import annotations

import base64
import json

import pytest

from django_s3strata.core import FileManager, FileTooLargeError, InvalidOptionError, StorageTier
from django_s3strata.core.direct import MAX_PARTS, MIN_PART_SIZE, cors_rule, part_sizes, presigned_post

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
    assert {"Content-Type": "text/plain"} in conditions and {"key": "private/x-a.txt"} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)


@pytest.mark.parametrize("origins", [[], ["app.example.com"], ["ftp://x"]])
def test_cors_origins_are_checked(origins: list[str]) -> None:
    with pytest.raises(InvalidOptionError, match="scheme://host"):
        cors_rule(origins)
