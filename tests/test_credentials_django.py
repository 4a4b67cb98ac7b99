"""A Django project with no keys in its settings: the default credential chain, keys that rotate mid-test."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile

from django_s3strata import get_file_manager
from django_s3strata.checks import check_credentials
from django_s3strata.models import PhysicalFile
from tests.core.test_credentials import CredentialsEndpoint, endpoint, weed_keys  # noqa: F401  (fixtures)
from tests.seaweed import SeaweedServer
from tests.testapp.models import Document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.seaweed]


@pytest.fixture
def keyless(weed_keys: SeaweedServer, endpoint: CredentialsEndpoint, settings: Any) -> Iterator[SeaweedServer]:  # noqa: F811
    """settings.S3STRATA naming an endpoint and buckets, and no credentials at all."""
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    weed_keys.create_bucket(hot)
    weed_keys.create_bucket(cold)
    settings.S3STRATA = {
        "ENDPOINT": weed_keys.host,
        "PORT": weed_keys.port,
        "USE_SSL": False,
        "HOT_BUCKET": hot,
        "COLD_BUCKET": cold,
    }
    yield weed_keys


def test_no_keys_in_settings_and_keys_that_rotate(keyless: SeaweedServer, endpoint: CredentialsEndpoint) -> None:  # noqa: F811
    a_expiry = endpoint.hand_out("ROTATINGKEYA", 900 + 6)  # botocore refreshes 15 minutes before expiry
    doc = Document.objects.create(title="before", attachment=ContentFile(b"uploaded with key A", name="a.txt"))
    assert "ROTATINGKEYA%2F" in doc.attachment.url
    messages = check_credentials()
    assert [m.id for m in messages] == ["s3strata.I001", "s3strata.I001"] and "container-role" in messages[0].msg

    endpoint.hand_out("ROTATINGKEYB", 7200)
    time.sleep(max(0.0, (a_expiry - timedelta(seconds=900) - datetime.now(UTC)).total_seconds()) + 0.5)
    later = Document.objects.create(title="after", attachment=ContentFile(b"uploaded with key B", name="b.txt"))
    moved = PhysicalFile.objects.get(pk=doc.attachment_id).set_tier("COLD")
    assert endpoint.fetches == ["ROTATINGKEYA", "ROTATINGKEYB"]
    for record, body in (
        (moved, b"uploaded with key A"),
        (PhysicalFile.objects.get(pk=later.attachment_id), b"uploaded with key B"),
    ):
        url = record.url
        assert "ROTATINGKEYB" in url
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == body
    assert get_file_manager().objectstore.credential_method(moved.storage_tier) == "container-role"  # type: ignore[arg-type]
