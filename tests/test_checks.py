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
        ({**GOOD, "HOT": {"ENDPOINT": "e"}}, "lacks BUCKET"),
        ({**GOOD, "HOT": {"BUCKET": "b", "ACCESS_KEY": "k", "SECRET_KEY": "s"}}, "lacks ENDPOINT"),
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


@pytest.mark.django_db
def test_deploy_check_warns_when_a_versioned_bucket_never_expires_old_versions(s3strata_settings: Env) -> None:
    from django_s3strata.checks import check_versioning

    env = s3strata_settings
    assert check_versioning() == []  # versioning never enabled
    env.hot_client.put_bucket_versioning(Bucket=env.hot_bucket, VersioningConfiguration={"Status": "Enabled"})
    [warning] = check_versioning()
    assert warning.id == "s3strata.W005" and warning.level == checks.WARNING
    assert env.hot_bucket in warning.msg and "public/ and private/" in warning.msg
    assert "NoncurrentVersionExpiration" in warning.hint
    # What the warning is about: our delete leaves the bytes behind as a noncurrent version.
    record = get_file_manager().sync.upload(b"kept forever")
    get_file_manager().sync.delete(record)
    versions = env.hot_client.list_object_versions(Bucket=env.hot_bucket, Prefix=record.path)
    assert [v["IsLatest"] for v in versions.get("Versions", [])] == [False]
    assert [m["IsLatest"] for m in versions.get("DeleteMarkers", [])] == [True]

    def rule(**filter_: Any) -> dict[str, Any]:
        return {
            "ID": "old-versions",
            "Status": "Enabled",
            "Filter": filter_,
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        }

    lifecycle = env.hot_client.put_bucket_lifecycle_configuration
    lifecycle(Bucket=env.hot_bucket, LifecycleConfiguration={"Rules": [rule(Prefix="public/")]})
    assert [m.id for m in check_versioning()] == ["s3strata.W005"]  # private/ keeps its versions
    lifecycle(Bucket=env.hot_bucket, LifecycleConfiguration={"Rules": [rule(Prefix="")]})
    assert check_versioning() == []
    env.hot_client.put_bucket_versioning(Bucket=env.hot_bucket, VersioningConfiguration={"Status": "Suspended"})
    env.hot_client.delete_bucket_lifecycle(Bucket=env.hot_bucket)
    assert check_versioning() == []  # suspended: new deletes remove the null version


@pytest.mark.parametrize(
    ("client_config", "fragment"),
    [
        ({"conect_timeout": 5}, "unknown option 'conect_timeout'. Did you mean 'connect_timeout'?"),
        ({"region_name": "eu-west-1"}, "set the tier's region (REGION)"),
        ({"s3": {"addressing_style": "virtual"}}, "ADDRESSING_STYLE"),
        ({"verify": "/no/such/ca.pem"}, "no such CA bundle file"),
        ({"retries": {"mode": "sometimes"}}, "is invalid"),
        ("proxies", "must be a dict"),
    ],
)
def test_client_config_is_checked_by_name(settings: Any, client_config: Any, fragment: str) -> None:
    settings.S3STRATA = {**GOOD, "CLIENT_CONFIG": client_config}
    errors = check_settings()  # one per tier: both read the shared CLIENT_CONFIG
    assert [e.id for e in errors] == ["s3strata.E001"] * 2 and all(fragment in e.msg for e in errors), errors
    settings.S3STRATA = {
        **GOOD,
        "COLD": {"ENDPOINT": "e", "ACCESS_KEY": "a", "SECRET_KEY": "s", "BUCKET": "b", "CLIENT_CONFIG": client_config},
    }
    [error] = check_settings()
    assert error.id == "s3strata.E001" and "cold client_config" in error.msg and fragment in error.msg


def test_direct_upload_method_is_post_or_put(settings: Any) -> None:
    assert ids(settings, {**GOOD, "DIRECT_UPLOAD_METHOD": "put"}) == []
    with pytest.raises(ConfigurationError, match=r"'post' .* or 'put'"):
        conf.parse({**GOOD, "DIRECT_UPLOAD_METHOD": "PATCH"})


# -- credentials (issue #17) ------------------------------------------------------------------------


def test_keys_are_optional_and_token_and_profile_follow_the_fields(settings: Any) -> None:
    no_keys = {k: v for k, v in GOOD.items() if k not in ("ACCESS_KEY", "SECRET_KEY")}
    assert ids(settings, no_keys) == []
    parsed = conf.parse({**GOOD, "SESSION_TOKEN": "T", "COLD": {"ENDPOINT": "e", "BUCKET": "c", "PROFILE": "archive"}})
    assert parsed.config.session_token == "T" and parsed.config.cold is not None and parsed.config.cold.profile == "archive"
    per_tier = {**no_keys, "HOT": {"ENDPOINT": "e", "BUCKET": "h", "ACCESS_KEY": "k", "SECRET_KEY": "s", "SESSION_TOKEN": "t"}}
    assert ids(settings, per_tier) == []


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({**GOOD, "ACCESS_KEY": None, "SECRET_KEY": None, "SESSION_TOKEN": "t"}, "S3STRATA['SESSION_TOKEN'] is used only"),
        ({**GOOD, "COLD": {"ENDPOINT": "e", "BUCKET": "c", "SECRET_KEY": "s"}}, "S3STRATA['COLD']['ACCESS_KEY']"),
        ({**GOOD, "PROFILE": "prod"}, "and S3STRATA['PROFILE']"),
    ],
)
def test_credential_mistakes_name_the_setting(settings: Any, value: dict[str, Any], key: str) -> None:
    settings.S3STRATA = value
    with pytest.raises(ConfigurationError) as info:
        get_file_manager()
    assert key in str(info.value) and "'s'" not in str(info.value)
    assert {"s3strata.E001", "s3strata.E002"} & set(ids(settings, value))


def test_deploy_check_names_the_credential_source_and_flags_static_keys(
    s3strata_settings: Env, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_s3strata.checks import check_credentials
    from django_s3strata.core.clients import reset_sessions

    messages = check_credentials()
    assert sorted(m.id for m in messages) == ["s3strata.I001", "s3strata.I001", "s3strata.W006", "s3strata.W006"]
    info = [m for m in messages if m.id == "s3strata.I001"]
    assert all(m.level == checks.INFO and "static keys in the settings" in m.msg and "'explicit'" in m.msg for m in info)
    warning = next(m for m in messages if m.id == "s3strata.W006")
    assert "ACCESS_KEY" in warning.msg and "instance profile" in warning.hint
    assert str(s3strata_settings.config.secret_key or s3strata_settings.config.hot.secret_key) not in warning.msg  # type: ignore[union-attr]
    # No keys in the settings: boto3's chain, here the environment, and no warning.
    keyless = {k: v for k, v in settings.S3STRATA.items() if k not in ("ACCESS_KEY", "SECRET_KEY")}
    for tier in ("HOT", "COLD"):
        if tier in keyless:
            keyless[tier] = {k: v for k, v in keyless[tier].items() if k not in ("ACCESS_KEY", "SECRET_KEY")}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "strata-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "strata-test-secret")
    reset_sessions()
    try:
        settings.S3STRATA = keyless
        messages = check_credentials()
        assert [m.id for m in messages] == ["s3strata.I001", "s3strata.I001"]
        assert all("boto3's default credential chain (botocore: 'env')" in m.msg for m in messages)
        assert check_buckets_exist() == []  # the chain's keys reach the buckets
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        reset_sessions()
        settings.S3STRATA = {**keyless}  # a new manager, a new look at the chain: nothing there
        messages = check_credentials()
        assert [m.id for m in messages] == ["s3strata.E011", "s3strata.E011"]
        assert check_buckets_exist() == []  # no "refused the credentials" on top of E011
    finally:
        reset_sessions()
