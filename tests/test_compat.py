"""Moving from django-storages: its settings translate, and its existing objects and names are adopted."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import default_storage

from django_s3strata import operations
from django_s3strata.compat import settings_from_django_storages
from django_s3strata.core import ConfigurationError
from django_s3strata.storage import S3StrataStorage
from tests.conftest import Env


def test_aws_settings_translate() -> None:
    translated = settings_from_django_storages(
        {
            "AWS_ACCESS_KEY_ID": "AK",
            "AWS_SECRET_ACCESS_KEY": "SK",
            "AWS_STORAGE_BUCKET_NAME": "media",
            "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_S3_REGION_NAME": "eu-west-1",
            "AWS_LOCATION": "uploads/",
            "AWS_QUERYSTRING_EXPIRE": 600,
        },
        cold_bucket="media-archive",
    )
    assert translated == {
        "ACCESS_KEY": "AK",
        "SECRET_KEY": "SK",
        "HOT_BUCKET": "media",
        "COLD_BUCKET": "media-archive",
        "ENDPOINT": "127.0.0.1",
        "USE_SSL": False,
        "PORT": 9000,
        "REGION": "eu-west-1",
        "PRIVATE_HOT_PREFIX": "uploads",
        "PRIVATE_COLD_PREFIX": "uploads",
        "ADVANCED": {"DEFAULT_PRESIGNED_URL_EXPIRATION": 600},
    }
    assert (
        settings_from_django_storages({"bucket_name": "b", "region_name": "us-west-2"})["ENDPOINT"]
        == "s3.us-west-2.amazonaws.com"
    )
    with pytest.raises(ConfigurationError, match="no bucket"):
        settings_from_django_storages({"AWS_ACCESS_KEY_ID": "x"})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_objects_written_by_django_storages_are_adopted_and_keep_their_names(s3strata_settings: Env, settings: Any) -> None:
    from storages.backends.s3 import S3Storage

    env = s3strata_settings
    cfg = env.config
    old = S3Storage(
        bucket_name=env.hot_bucket,
        endpoint_url=f"http://{cfg.endpoint}:{cfg.port}",
        access_key=cfg.access_key,
        secret_key=cfg.secret_key,
        location="media",
        region_name="us-east-1",
    )
    from django.core.files.base import ContentFile

    name = old.save("invoices/2025/a.pdf", ContentFile(b"%PDF old"))
    assert env.keys("HOT") == ["media/invoices/2025/a.pdf"] and name == "invoices/2025/a.pdf"
    settings.S3STRATA = {
        **settings_from_django_storages(
            {"bucket_name": env.hot_bucket, "endpoint_url": f"http://{cfg.endpoint}:{cfg.port}", "access_key": cfg.access_key,
             "secret_key": cfg.secret_key, "location": "media"},
            cold_bucket=env.cold_bucket,
        ),
        "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0},
    }  # fmt: skip
    adopted = operations.sweep_orphans("adopt", prefix="media/")
    assert adopted.adopted == 1
    new = S3StrataStorage()
    assert new.exists(name) and default_storage.exists(name)
    with new.open(name) as fh:
        assert fh.read() == b"%PDF old"
    new.record(name).archive()
    with new.open(name) as fh:  # the same stored name, now served from COLD
        assert fh.read() == b"%PDF old"
