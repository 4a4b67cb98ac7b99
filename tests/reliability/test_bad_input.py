"""Bad and hostile input the other suites leave out: storage names, option values, URLs by prefix, secrets, CSRF."""

from __future__ import annotations

import logging
import unicodedata
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from django_s3strata.core import (
    FileManager,
    GetUrlOptions,
    InMemoryAdapter,
    InvalidKeyError,
    InvalidOptionError,
    PhysicalFile,
    S3StrataConfig,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.keys import MAX_KEY_BYTES, build_key
from tests.core.test_hostile_input import nasty

SECRET = "hunter2-do-not-print"
# Port 9 (discard) on 127.0.0.1: a request that should never be sent could not leave the machine either.
CONFIG = S3StrataConfig(
    endpoint="127.0.0.1",
    port=9,
    use_ssl=False,
    access_key="AKIDEXAMPLE",
    secret_key=SECRET,
    hot_bucket="h",
    cold_bucket="c",
    public_hot_prefix="www",
    private_cold_prefix="vault",
)
MANAGER = FileManager(CONFIG, InMemoryAdapter())
NOW = datetime.now(UTC)


def record(tier: str, path: str) -> PhysicalFile:
    return PhysicalFile(1, StorageTier(tier), "f.bin", path, None, NOW, NOW)


@settings(max_examples=200, deadline=None)
@given(name=nasty)
def test_storage_names_are_made_safe_or_refused(name: str) -> None:
    from django_s3strata.storage import S3StrataStorage

    with mock.patch("django_s3strata.storage.store_upload") as store:
        try:
            suffix = S3StrataStorage().save(name, ContentFile(b"x"))
        except (SuspiciousFileOperation, InvalidKeyError):
            store.assert_not_called()  # refused before any byte is stored
            return
    store.assert_called_once()
    assert store.call_args.args[2] == suffix
    try:
        key = build_key(MANAGER.objectstore.tier(StorageTier.HOT), "PRIVATE", suffix)  # type: ignore[arg-type]
    except InvalidKeyError:
        return  # too long for S3: refused by the upload before any request
    assert key.startswith("private/") and len(key.encode()) <= MAX_KEY_BYTES
    assert all(part not in ("", ".", "..") for part in key.split("/"))
    assert not any(unicodedata.category(c) == "Cc" for c in key) and "\\" not in key


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(tier="WARM")), "Invalid tier 'WARM'"),
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(visibility="SECRET")), "Invalid visibility 'SECRET'"),
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(hot_duration=-1)), "hot_duration=-1 is invalid"),
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(hot_duration=1.5)), "hot_duration=1.5 is invalid"),
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(hot_duration="10")), "hot_duration='10' is invalid"),  # type: ignore[arg-type]
        (lambda: MANAGER.sync.upload(b"x", UploadOptions(hot_duration=True)), "hot_duration=True is invalid"),
        (lambda: MANAGER.sync.set_tier(record("HOT", "private/a"), SetTierOptions(tier="LUKEWARM")), "Invalid tier"),
        (lambda: MANAGER.sync.set_tier(record("COLD", "vault/a"), SetTierOptions(tier="HOT", hot_duration=-3)), "-3"),
        (lambda: MANAGER.sync.set_visibility(record("HOT", "private/a"), SetVisibilityOptions(visibility="x")), "Invalid visib"),
        (lambda: MANAGER.sync.set_hot_duration(record("HOT", "private/a"), SetHotDurationOptions(duration=-5)), "duration=-5"),
        (lambda: MANAGER.sync.set_hot_duration(record("HOT", "private/a"), SetHotDurationOptions(duration=2.5)), "duration=2.5"),
        (lambda: MANAGER.sync.get_url(record("HOT", "private/a"), GetUrlOptions(expires_in=0)), "expires_in=0 is invalid"),
        (lambda: MANAGER.sync.get_url(record("HOT", "private/a"), GetUrlOptions(expires_in=604801)), "7 days"),
    ],
)
def test_bad_options_are_refused_with_a_specific_error_before_any_request(call: Any, message: str) -> None:
    no_requests = mock.patch.object(MANAGER.objectstore, "client", side_effect=AssertionError("no request may be sent"))
    with no_requests, pytest.raises(InvalidOptionError, match=message):
        call()


@settings(max_examples=300, deadline=None)
@given(
    tier=st.sampled_from(["HOT", "COLD"]), root=st.sampled_from(["www", "public", "private", "vault", "other", ""]), rest=nasty
)
def test_a_public_url_is_only_ever_built_for_the_public_prefix(tier: str, root: str, rest: str) -> None:
    path = f"{root}/{rest}" if root else rest
    r = MANAGER.objectstore.tier(StorageTier(tier))
    try:
        url = MANAGER.sync.get_url(record(tier, path))
    except InvalidKeyError:
        assert not path.startswith((r.public_prefix + "/", r.private_prefix + "/")) or path in (
            r.public_prefix + "/",
            r.private_prefix + "/",
        )
        return
    signed = "X-Amz-Signature=" in url
    if path.startswith(r.private_prefix + "/"):
        assert signed  # a private object never gets an unsigned URL
    else:
        assert path.startswith(r.public_prefix + "/") and not signed
    assert SECRET not in url


@pytest.mark.django_db
def test_secrets_stay_out_of_settings_reprs_and_logs(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    from django_s3strata import conf, get_file_manager
    from django_s3strata.core import StorageError

    settings.S3STRATA = {**settings.S3STRATA, "SECRET_KEY": SECRET, "HOT": None}
    parsed = conf.get_settings()
    # Port 9 on 127.0.0.1: the connection is refused at once.
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageError) as info:
        get_file_manager().sync.upload(b"x", UploadOptions(path_suffix="k"))
    text = repr(parsed) + str(parsed.config) + repr(get_file_manager().objectstore.tier(StorageTier.HOT)) + str(info.value)
    assert SECRET not in text + caplog.text + repr(info.value.__cause__)


@pytest.mark.django_db
def test_admin_actions_need_a_csrf_token(admin_user: Any) -> None:
    from django_s3strata.models import PhysicalFile as Row

    row = Row.objects.create(filename="a", path="private/a")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    data = {"action": "move_to_cold", "_selected_action": [str(row.pk)]}
    response = client.post("/admin/s3strata/physicalfile/", data)
    assert response.status_code == 403 and b"CSRF" in response.content
    assert Row.objects.get(pk=row.pk).storage_tier == "HOT"
    orphans = client.post("/admin/s3strata/physicalfile/orphans/", {"tier": "HOT", "orphan_action": "delete", "key": ["x"]})
    assert orphans.status_code == 403
