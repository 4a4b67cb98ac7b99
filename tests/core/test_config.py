"""Configuration: upstream's defaults and modes, our fixes, and errors that say what to set."""

from __future__ import annotations

import math

import pytest

from django_s3strata.core import ConfigurationError, S3StrataAdvancedOptions, S3StrataConfig, S3TierConfig, StorageTier
from django_s3strata.core.config import get_bucket_name, get_path_prefix, resolve_tier


def shared(**kw: object) -> S3StrataConfig:
    base: dict[str, object] = dict(endpoint="s3.example.com", access_key="AK", secret_key="SK", hot_bucket="h", cold_bucket="c")
    base.update(kw)
    return S3StrataConfig(**base)  # type: ignore[arg-type]


def test_advanced_defaults_match_upstream() -> None:
    adv = S3StrataAdvancedOptions()
    assert adv.default_presigned_url_expiration == 14400
    assert adv.max_file_size == math.inf
    assert adv.default_storage_tier is StorageTier.HOT
    assert adv.default_visibility == "PRIVATE"
    assert S3StrataAdvancedOptions(default_storage_tier="cold").default_storage_tier is StorageTier.COLD


def test_shared_mode_defaults_and_prefixes() -> None:
    hot = resolve_tier(shared(), "HOT")
    assert (hot.endpoint_url, hot.bucket, hot.public_prefix, hot.private_prefix) == (
        "https://s3.example.com",
        "h",
        "public",
        "private",
    )
    cold = resolve_tier(shared(public_cold_prefix="pc", private_hot_prefix="ph"), StorageTier.COLD)
    assert cold.public_prefix == "pc" and cold.private_prefix == "private"
    assert get_path_prefix(shared(private_hot_prefix="ph"), "HOT", "PRIVATE") == "ph"
    assert get_bucket_name(shared(), "COLD") == "c"


@pytest.mark.parametrize(
    ("port", "ssl", "url"),
    [
        (443, True, "https://h.example"),
        (80, False, "http://h.example"),
        (9000, False, "http://h.example:9000"),
        (80, True, "https://h.example:80"),
    ],
)
def test_endpoint_url_omits_default_ports(port: int, ssl: bool, url: str) -> None:
    assert resolve_tier(shared(endpoint="h.example", port=port, use_ssl=ssl), "HOT").endpoint_url == url


def test_http_without_port_defaults_to_80() -> None:
    assert resolve_tier(shared(use_ssl=False), "HOT").endpoint_url == "http://s3.example.com"


def test_tier_block_wins_over_shared_fields() -> None:
    cfg = shared(cold=S3TierConfig("cold.example", "AK2", "SK2", "archive", port=9000, use_ssl=False, region="eu-west-1"))
    cold, hot = resolve_tier(cfg, "COLD"), resolve_tier(cfg, "HOT")
    assert (cold.endpoint_url, cold.bucket, cold.region) == ("http://cold.example:9000", "archive", "eu-west-1")
    assert hot.bucket == "h" and not hot.same_location(cold)
    assert resolve_tier(shared(), "HOT").same_location(resolve_tier(shared(), "COLD"))


def test_missing_fields_are_named_with_both_ways_to_supply_them() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_tier(S3StrataConfig(endpoint="e", access_key="a", hot_bucket="h"), "COLD")
    msg = str(info.value)
    assert "COLD tier" in msg and "secret_key" in msg and "cold_bucket" in msg and "cold=S3TierConfig(" in msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "kw",
    [
        {"endpoint": "https://s3.example.com"},
        {"port": 70000},
        {"public_hot_prefix": "/pub"},
        {"public_hot_prefix": "same", "private_hot_prefix": "same"},
        {"public_cold_prefix": "a/../b"},
    ],
)
def test_invalid_settings_are_refused(kw: dict[str, object]) -> None:
    cfg = shared(**kw)
    with pytest.raises(ConfigurationError):
        resolve_tier(cfg, "HOT")
        resolve_tier(cfg, "COLD")


@pytest.mark.parametrize(
    "kw",
    [
        {"default_presigned_url_expiration": 0},
        {"default_presigned_url_expiration": 604801},
        {"max_file_size": 0},
        {"max_concurrency": 0},
        {"multipart_chunksize": 1024},
        {"default_storage_tier": "WARM"},
        {"request_checksum_calculation": "always"},
    ],
)
def test_invalid_advanced_options_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kw))):
        S3StrataAdvancedOptions(**kw)  # type: ignore[arg-type]


def test_repr_never_shows_a_secret() -> None:
    cfg = shared(secret_key="TOP-SECRET-1", hot=S3TierConfig("e", "AK", "TOP-SECRET-2", "b"))
    text = repr(cfg) + repr(resolve_tier(cfg, "HOT")) + repr(resolve_tier(cfg, "COLD"))
    assert "TOP-SECRET" not in text and "AK" in text


# -- credentials (issue #17) ------------------------------------------------------------------------


def test_keys_are_optional_and_then_the_default_chain_is_meant() -> None:
    hot = resolve_tier(shared(access_key=None, secret_key=None), "HOT")
    assert (hot.access_key, hot.secret_key, hot.session_token, hot.profile) == (None, None, None, None)
    assert hot.describe_credentials() == "boto3's default credential chain"
    # An unset environment variable read with a "" default counts as not given.
    assert resolve_tier(shared(access_key="", secret_key=""), "COLD").access_key is None
    tier = resolve_tier(S3StrataConfig(cold=S3TierConfig("e", bucket="b", profile="prod")), "COLD")
    assert tier.profile == "prod" and tier.access_key is None and "'prod'" in tier.describe_credentials()
    token = resolve_tier(shared(session_token="TOKEN-1"), "HOT")
    assert token.session_token == "TOKEN-1" and token.describe_credentials().endswith("with a session token")


@pytest.mark.parametrize(
    ("kw", "named", "missing"),
    [
        ({"secret_key": None}, "secret_key", ("secret_key",)),
        ({"access_key": None}, "access_key", ("access_key",)),
        ({"access_key": None, "secret_key": None, "session_token": "T"}, "session_token", ("access_key", "secret_key")),
        ({"hot_bucket": None, "secret_key": None}, "hot_bucket", ("secret_key", "bucket")),
    ],
)
def test_half_a_key_pair_or_a_lone_token_is_refused_by_name(kw: dict[str, object], named: str, missing: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_tier(shared(**kw), "HOT")
    assert named in str(info.value) and info.value.missing == missing and "default credential chain" in str(info.value)


def test_keys_and_a_profile_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"hot\.access_key, hot\.secret_key\) and hot\.profile"):
        resolve_tier(shared(hot=S3TierConfig("e", "AK", "SK", "b", profile="prod")), "HOT")


def test_same_location_needs_one_credential_source() -> None:
    def both(hot: S3TierConfig, cold: S3TierConfig) -> bool:
        cfg = S3StrataConfig(hot=hot, cold=cold)
        return resolve_tier(cfg, "HOT").same_location(resolve_tier(cfg, "COLD"))

    assert both(S3TierConfig("e", bucket="h"), S3TierConfig("e", bucket="c"))  # one chain, one identity
    assert both(S3TierConfig("e", bucket="h", profile="p"), S3TierConfig("e", bucket="c", profile="p"))
    assert not both(S3TierConfig("e", bucket="h", profile="p"), S3TierConfig("e", bucket="c", profile="q"))
    assert not both(S3TierConfig("e", "AK", "SK", "h"), S3TierConfig("e", bucket="c"))
    assert not both(S3TierConfig("e", "AK", "SK", "h"), S3TierConfig("e", "AK", "SK2", "c"))
    token = {"session_token": "T1"}
    assert not both(S3TierConfig("e", "AK", "SK", "h", **token), S3TierConfig("e", "AK", "SK", "c", session_token="T2"))
    assert both(S3TierConfig("e", "AK", "SK", "h", **token), S3TierConfig("e", "AK", "SK", "c", **token))


def test_repr_never_shows_a_session_token() -> None:
    cfg = shared(session_token="TOP-SECRET-TOKEN", hot=S3TierConfig("e", "AK", "SK", "b", session_token="TOP-SECRET-T2"))
    text = repr(cfg) + repr(resolve_tier(cfg, "HOT")) + repr(resolve_tier(cfg, "COLD"))
    assert "TOP-SECRET" not in text
