"""settings.S3STRATA: parsing, unknown keys refused by name, system checks that say what to set."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core import checks

from django_s3strata import conf, get_file_manager
from django_s3strata.checks import check_buckets_exist, check_settings
from django_s3strata.core import ConfigurationError, StorageTier
from tests.conftest import Env

GOOD = {
    "ENDPOINT": "127.0.0.1",
    "PORT": 9000,
    "USE_SSL": False,
    "ACCESS_KEY": "a",
    "SECRET_KEY": "s",
    "HOT_BUCKET": "h",
    "COLD_BUCKET": "c",
}


def ids(settings: Any, value: Any, **extra: Any) -> list[str]:
    settings.S3STRATA = value
    for key, v in extra.items():
        setattr(settings, key, v)
    return [m.id for m in check_settings()]


def test_parse_maps_upper_case_keys() -> None:
    parsed = conf.parse(
        {
            **GOOD,
            "PUBLIC_HOT_PREFIX": "www",
            "COLD": {"ENDPOINT": "b2.example", "ACCESS_KEY": "k", "SECRET_KEY": "x", "BUCKET": "arch", "REGION": "us-west-002"},
            "ADVANCED": {"MAX_FILE_SIZE": 1000, "DEFAULT_VISIBILITY": "PUBLIC", "COLD_STORAGE_CLASS": "STANDARD_IA"},
            "STORAGE_HOT_DURATION": 60,
        }
    )
    assert parsed.config.public_hot_prefix == "www" and parsed.config.cold.region == "us-west-002"
    assert parsed.config.advanced.max_file_size == 1000 and parsed.config.advanced.default_visibility == "PUBLIC"
    assert parsed.STORAGE_HOT_DURATION == 60 and parsed.SHARED_TABLE is False


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({**GOOD, "HOT_BUCKETS": "x"}, "Unknown key 'HOT_BUCKETS' in settings.S3STRATA. Did you mean 'HOT_BUCKET'?"),
        ({**GOOD, "HOT": {"ENDPOINT": "e", "BUKET": "b"}}, "Unknown key 'BUKET' in settings.S3STRATA['HOT']"),
        ({**GOOD, "ADVANCED": {"MAX_SIZE": 1}}, "Unknown key 'MAX_SIZE' in settings.S3STRATA['ADVANCED']"),
        ({**GOOD, "HOT": {"ENDPOINT": "e"}}, "lacks ACCESS_KEY, SECRET_KEY, BUCKET"),
        ("not a dict", "must be a dict"),
    ],
)
def test_bad_settings_are_refused_by_name(value: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        conf.parse(value)
    assert fragment in str(info.value)


def test_good_settings_pass(settings: Any) -> None:
    assert ids(settings, GOOD) == []


def test_missing_values_name_the_keys(settings: Any) -> None:
    settings.S3STRATA = {"ENDPOINT": "127.0.0.1", "ACCESS_KEY": "a", "HOT_BUCKET": "h"}
    messages = check_settings()
    assert [m.id for m in messages] == ["s3strata.E002", "s3strata.E002"]
    hot, cold = sorted(messages, key=lambda m: m.msg)[::-1]
    assert "S3STRATA['SECRET_KEY']" in hot.msg and "HOT" in hot.msg
    assert "S3STRATA['COLD_BUCKET']" in cold.msg
    assert all(m.level == checks.ERROR for m in messages)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"COLD_BUCKET": "h"}, "s3strata.E003"),
        ({"PUBLIC_HOT_PREFIX": "files", "PRIVATE_HOT_PREFIX": "files"}, "s3strata.E005"),
        ({"ADVANCED": {"DEFAULT_PRESIGNED_URL_EXPIRATION": 8 * 24 * 3600}}, "s3strata.E004"),
        ({"HOT_BUCKETZ": "h"}, "s3strata.E001"),
        ({"ENDPOINT": "s3.example.com"}, "s3strata.W001"),
    ],
)
def test_each_misconfiguration_has_its_check(settings: Any, extra: dict[str, Any], expected: str) -> None:
    assert expected in ids(settings, {**GOOD, **extra})


def test_same_bucket_with_distinct_prefixes_is_fine(settings: Any) -> None:
    value = {**GOOD, "COLD_BUCKET": "h", "PUBLIC_COLD_PREFIX": "cold-public", "PRIVATE_COLD_PREFIX": "cold-private"}
    assert ids(settings, value) == []


def test_celery_schedule_with_unknown_task(settings: Any) -> None:
    schedule = {
        "ok": {"task": "django_s3strata.tasks.archive_expired_hot_files", "schedule": 60},
        "typo": {"task": "django_s3strata.tasks.archive_expired", "schedule": 60},
        "other": {"task": "myapp.tasks.x", "schedule": 60},
    }
    assert ids(settings, GOOD, CELERY_BEAT_SCHEDULE=schedule) == ["s3strata.E006"]


def test_file_manager_follows_setting_changes(s3strata_settings: Env, settings: Any) -> None:
    first = get_file_manager()
    assert first.objectstore.tier(StorageTier.HOT).bucket == s3strata_settings.hot_bucket
    assert get_file_manager() is first
    settings.S3STRATA = {**GOOD, "HOT_BUCKET": "another"}
    assert get_file_manager() is not first
    assert get_file_manager().objectstore.tier(StorageTier.HOT).bucket == "another"


def test_deploy_check_asks_s3(s3strata_settings: Env, settings: Any) -> None:
    assert check_buckets_exist() == []
    value = dict(settings.S3STRATA)
    if "COLD" in value:
        value["COLD"] = {**value["COLD"], "BUCKET": "no-such-bucket-anywhere"}
    else:
        value["COLD_BUCKET"] = "no-such-bucket-anywhere"
    settings.S3STRATA = value
    [message] = check_buckets_exist()
    assert message.id == "s3strata.E010" and "no-such-bucket-anywhere" in message.hint
    assert "does not exist" in message.msg  # HeadBucket's bare 404 is a missing bucket, not "no such object"


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_direct_upload_fields_need_the_urls(settings: Any) -> None:
    from django_s3strata.checks import check_direct_upload_urls

    assert check_direct_upload_urls() == []  # tests.urls includes django_s3strata.urls
    settings.ROOT_URLCONF = "tests.urls_without_s3strata"
    [warning] = check_direct_upload_urls()
    assert warning.id == "s3strata.W002" and "testapp.Clip.video" in warning.msg
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("DirectUploadMiddleware")]
    [warning] = check_direct_upload_urls()
    assert warning.id == "s3strata.W003" and "DirectUploadMiddleware" in warning.msg


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({"ADVANCED": {"ORPHAN_GRACE_PERIOD": 60}}, True),  # a minute: direct uploads in flight would be swept
        ({"ADVANCED": {"ORPHAN_GRACE_PERIOD": 7199}}, True),  # one second short of 3600 + the 1-hour margin
        ({"ADVANCED": {"ORPHAN_GRACE_PERIOD": 7200}}, False),
        ({"ADVANCED": {"ORPHAN_GRACE_PERIOD": 7200}, "DIRECT_UPLOAD_EXPIRES": 7200}, True),
        ({"ADVANCED": {"ORPHAN_GRACE_PERIOD": 3900}, "DIRECT_UPLOAD_EXPIRES": 300}, False),
        ({}, False),  # the defaults: 24 hours against 1 + 1 hours
    ],
)
def test_grace_period_must_cover_the_upload_window(settings: Any, extra: dict[str, Any], refused: bool) -> None:
    settings.S3STRATA = {**GOOD, **extra}
    messages = [m for m in check_settings() if m.id == "s3strata.E007"]
    assert bool(messages) is refused
    if refused:
        [message] = messages
        assert message.level == checks.ERROR and "ORPHAN_GRACE_PERIOD" in message.msg and "DIRECT_UPLOAD_EXPIRES" in message.msg
        assert "at least" in message.hint


def test_storage_hot_duration_setting_is_bounded(settings: Any) -> None:
    assert "s3strata.E001" in ids(settings, {**GOOD, "STORAGE_HOT_DURATION": 10**20})
    assert ids(settings, {**GOOD, "STORAGE_HOT_DURATION": 100 * 365 * 86400}) == []


# -- the first hour: what the messages tell a Django user -------------------------------------------


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({**GOOD, "HOT_BUCKET": ""}, "S3STRATA['HOT_BUCKET']"),
        ({k: v for k, v in GOOD.items() if k != "SECRET_KEY"}, "S3STRATA['SECRET_KEY']"),
        (
            {**GOOD, "COLD": {"ENDPOINT": "127.0.0.1", "ACCESS_KEY": "a", "SECRET_KEY": "s", "BUCKET": ""}},
            "S3STRATA['COLD']['BUCKET']",
        ),
    ],
)
def test_runtime_configuration_error_names_the_django_setting(settings: Any, value: dict[str, Any], key: str) -> None:
    settings.S3STRATA = value
    with pytest.raises(ConfigurationError) as info:
        get_file_manager()
    assert key in str(info.value) and "S3StrataConfig" not in str(info.value) and "hot_bucket" not in str(info.value)


def test_deploy_check_tells_refused_credentials_from_a_missing_bucket(s3strata_settings: Env, settings: Any) -> None:
    from moto.core import enable_iam_authentication

    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"MAX_ATTEMPTS": 1}}
    value = dict(settings.S3STRATA)
    for tier in ("HOT", "COLD"):
        if tier in value:
            value[tier] = {**value[tier], "ACCESS_KEY": "AKIAWRONGWRONGWRONG1", "SECRET_KEY": "wrong"}
        else:
            value.update(ACCESS_KEY="AKIAWRONGWRONGWRONG1", SECRET_KEY="wrong")
    settings.S3STRATA = value
    with enable_iam_authentication():
        messages = check_buckets_exist()
    assert [m.id for m in messages] == ["s3strata.E010", "s3strata.E010"]
    for message in messages:
        assert "refused the credentials" in message.msg and message.msg.endswith(".")
        assert "Create" not in message.hint and "ACCESS_KEY and SECRET_KEY" in message.hint and "s3:ListBucket" in message.hint


def test_deploy_check_warns_when_the_public_prefix_is_not_readable(s3strata_settings: Env, settings: Any) -> None:
    from django_s3strata.checks import check_public_read

    env = s3strata_settings
    assert check_public_read() == []  # the fixture set the public-read policy on both buckets
    env.hot_client.delete_bucket_policy(Bucket=env.hot_bucket)
    [warning] = check_public_read()
    assert warning.id == "s3strata.W004" and warning.level == checks.WARNING
    assert env.hot_bucket in warning.msg and "public/*" in warning.msg and "no bucket policy" in warning.msg
    assert "s3strata_public_policy" in warning.hint
    private_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{env.hot_bucket}/private/*",
            }
        ],
    }
    env.hot_client.put_bucket_policy(Bucket=env.hot_bucket, Policy=json.dumps(private_only))
    [warning] = check_public_read()
    assert "does not allow it" in warning.msg
    value = dict(settings.S3STRATA)
    if "HOT" in value:
        value["HOT"] = {**value["HOT"], "PUBLIC_BASE_URL": "https://cdn.example.com"}
    else:
        value["HOT_PUBLIC_BASE_URL"] = "https://cdn.example.com"
    settings.S3STRATA = value
    assert check_public_read() == []  # a CDN serves it: the bucket's policy is not the question


def test_direct_upload_warnings_are_plain_sentences(settings: Any) -> None:
    from django_s3strata.checks import check_direct_upload_urls

    settings.ROOT_URLCONF = "tests.urls_without_s3strata"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("DirectUploadMiddleware")]
    w002, w003 = check_direct_upload_urls()
    assert w002.msg.startswith("The field testapp.Clip.video has direct_upload=True, but the URLconf")
    assert w003.msg.startswith("The field testapp.Clip.video has direct_upload=True, but DirectUploadMiddleware")
    assert "ask for" not in w002.msg + w003.msg
