"""Reading a bucket policy for anonymous read of the public prefix, and the policy that grants it (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from django_s3strata.core import S3StrataConfig, StorageTier
from django_s3strata.core.objectstore import ObjectStore

HOT, COLD = StorageTier.HOT, StorageTier.COLD


def store(**extra: Any) -> ObjectStore:
    fields = {"endpoint": "s3.example.com", "access_key": "a", "secret_key": "s", "hot_bucket": "h", "cold_bucket": "c"}
    return ObjectStore(S3StrataConfig(**{**fields, **extra}))


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(
    resource: Any = "arn:aws:s3:::h/public/*", action: Any = "s3:GetObject", principal: Any = "*", **more: Any
) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource, **more}


@pytest.mark.parametrize(
    ("given", "readable"),
    [
        (None, False),
        (policy(allow()), True),
        (policy(allow(resource=["arn:aws:s3:::h/private/*", "arn:aws:s3:::h/public/*"])), True),
        (policy(allow(resource="arn:aws:s3:::h/*")), True),
        (policy(allow(resource="arn:aws:s3:::*")), True),
        (policy(allow(resource="arn:aws:s3:::h/pub*")), True),
        (policy(allow(resource="arn:aws:s3:::h/public/*.jpg")), False),  # only some keys
        (policy(allow(resource="arn:aws:s3:::h/private/*")), False),
        (policy(allow(resource="arn:aws:s3:::c/public/*")), False),  # another bucket
        (policy(allow(action=["s3:Get*"])), True),
        (policy(allow(action="s3:*")), True),
        (policy(allow(action="s3:PutObject")), False),
        (policy(allow(principal={"AWS": "*"})), True),
        (policy(allow(principal={"AWS": "arn:aws:iam::123456789012:root"})), False),
        (policy(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), False),
        (policy(allow(), {**allow(resource="arn:aws:s3:::h/*"), "Effect": "Deny"}), False),
        ({"Statement": allow()}, True),  # one statement, not in a list
    ],
)
def test_grants_public_read(given: dict[str, Any] | None, readable: bool) -> None:
    assert store().grants_public_read(HOT, given) is readable


def test_the_policy_it_sets_grants_what_it_reads() -> None:
    s = store(public_hot_prefix="www")
    for tier in StorageTier:
        assert s.public_read_bucket_policy(tier) == s.public_read_policy(tier)
        assert s.grants_public_read(tier, s.public_read_bucket_policy(tier))
    assert not s.grants_public_read(COLD, s.public_read_bucket_policy(HOT))


def test_tiers_sharing_a_bucket_get_one_policy_for_both_prefixes() -> None:
    s = store(cold_bucket="h", public_cold_prefix="cold-public", private_cold_prefix="cold-private")
    both = s.public_read_bucket_policy(COLD)
    assert both["Statement"][0]["Resource"] == ["arn:aws:s3:::h/public/*", "arn:aws:s3:::h/cold-public/*"]
    assert s.grants_public_read(HOT, both) and s.grants_public_read(COLD, both)
