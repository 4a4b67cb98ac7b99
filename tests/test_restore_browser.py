"""The restore action in a real browser: an archived file listed without errors, the confirmation page, the request."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from django_s3strata import get_file_manager
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from django_s3strata.operations_restore import complete_restores
from tests.browser import needs_browser
from tests.conftest import Env
from tests.test_admin_browser import admin_browser, driver, messages, run_action, shot, submit  # noqa: F401  (fixtures)

pytestmark = [
    needs_browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("env", ["shared"], indirect=True),
]


def test_restore_an_archived_file_from_the_admin(admin_browser: Any, s3strata_settings: Env, settings: Any) -> None:  # noqa: F811
    browser, env = admin_browser, s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"COLD_STORAGE_CLASS": "DEEP_ARCHIVE"}}
    record = get_file_manager().sync.upload(b"%PDF-1.7 invoice", UploadOptions(tier="HOT", filename="invoice-0042.pdf"))
    record = PhysicalFile.objects.get(pk=record.pk).archive()
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=record.path)["StorageClass"] == "DEEP_ARCHIVE"

    # The list shows the archived file, with its state and no link, without failing.
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/")
    row = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr").text
    assert "invoice-0042.pdf" in row and "archived (DEEP_ARCHIVE)" in row

    run_action(browser, "request_restore", [record.pk])
    page = browser.find_element(By.ID, "content").text
    assert "invoice-0042.pdf" in page and "DEEP_ARCHIVE" in page
    terms = browser.find_element(By.ID, "s3strata-restore-terms").text
    assert "up to 12 hours" in terms and "up to 48 hours" in terms and "$0.02 per GB" in terms
    shot(browser, "restore-confirmation")
    Select(browser.find_element(By.NAME, "retrieval")).select_by_value("Bulk")
    days = browser.find_element(By.NAME, "days")
    days.clear()
    days.send_keys("5")
    submit(browser, browser.find_element(By.NAME, "apply"))
    assert any("1 restore requested (Bulk, 5 day(s))" in m for m in messages(browser))
    assert PhysicalFile.objects.get(pk=record.pk).archive_state == "RESTORING"
    assert "restoring" in browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr").text

    # Asked again (moto has completed it at once): nothing is requested, and the page says so.
    run_action(browser, "request_restore", [record.pk])
    submit(browser, browser.find_element(By.NAME, "apply"))
    assert any("needs no restore: it is readable, or restored already" in m for m in messages(browser))

    # moto completes restores at once: the second request recorded it; the poll has nothing left to check.
    assert complete_restores().checked == 0
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/")
    assert "restored until" in browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr").text
    shot(browser, "restore-restored")
