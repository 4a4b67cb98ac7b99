"""The admin in a real browser: headless Chromium driven by Selenium against Django's live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_s3strata import get_file_manager
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from tests.browser import chromium, needs_browser
from tests.conftest import Env

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = [
    needs_browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("env", ["shared"], indirect=True),
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from chromium(tmp_path_factory)


@pytest.fixture
def admin_browser(driver: Any, live_server: Any, s3strata_settings: Env, request: pytest.FixtureRequest) -> Iterator[Any]:
    User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")
    driver.delete_all_cookies()
    driver.get(f"{live_server.url}/admin/login/?next=/admin/")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("s3cret-pass")
    submit(driver, driver.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "/admin/login/" not in driver.current_url
    driver.base = live_server.url
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{request.node.name}.png"))


def submit(browser: Any, element: Any) -> None:
    """Click ``element`` and wait until the next page has replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_: Any) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale, or "does not belong to the document": the page is gone
            return True
        return False

    WebDriverWait(browser, 15).until(replaced)
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def run_action(browser: Any, name: str, ids: list[int]) -> None:
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/")
    for pk in ids:
        browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value(name)
    submit(browser, browser.find_element(By.NAME, "index"))


def messages(browser: Any) -> list[str]:
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "ul.messagelist li"))
    return [m.text for m in browser.find_elements(By.CSS_SELECTOR, "ul.messagelist li")]


def test_upload_then_move_to_cold(admin_browser: Any, s3strata_settings: Env, tmp_path: Path) -> None:
    env, browser = s3strata_settings, admin_browser
    source = tmp_path / "quarterly.pdf"
    source.write_bytes(b"%PDF-1.7 quarterly numbers")
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/add/")
    browser.find_element(By.NAME, "upload").send_keys(str(source))
    Select(browser.find_element(By.NAME, "tier")).select_by_value("HOT")
    shot(browser, "add-page")
    submit(browser, browser.find_element(By.NAME, "_save"))
    record = PhysicalFile.objects.get()
    assert record.filename == "quarterly.pdf" and env.read("HOT", record.path) == source.read_bytes()
    run_action(browser, "move_to_cold", [record.pk])
    assert "1 file moved to COLD." in messages(browser)
    run_action(browser, "delete_with_objects", [record.pk])
    shot(browser, "delete-with-objects")
    assert env.keys("HOT") == [] and env.read("COLD", record.path) == source.read_bytes()
    assert PhysicalFile.objects.get().storage_tier == "COLD"


def test_set_hot_duration_through_the_intermediate_page(admin_browser: Any) -> None:
    browser = admin_browser
    f = get_file_manager().sync.upload(b"x", UploadOptions(filename="keep-hot.txt", hot_duration=86400))
    run_action(browser, "set_hot_duration", [f.pk])
    assert "keep-hot.txt" in browser.find_element(By.ID, "content").text
    shot(browser, "set-hot-duration")
    field = browser.find_element(By.NAME, "duration")
    field.clear()
    field.send_keys("0")
    submit(browser, browser.find_element(By.NAME, "apply"))
    assert "1 file got a new hot duration." in messages(browser)
    assert PhysicalFile.objects.get().hot_until <= timezone.now()


def test_a_huge_hot_duration_is_a_form_error(admin_browser: Any) -> None:
    """Typed into the intermediate page, 20 digits never reach S3 or the rows: first the browser
    refuses it (the field's max), and without that check the server answers with a form error."""
    browser = admin_browser
    f = get_file_manager().sync.upload(b"x", UploadOptions(filename="keep-hot.txt", hot_duration=86400))
    run_action(browser, "set_hot_duration", [f.pk])
    field = browser.find_element(By.NAME, "duration")
    field.clear()
    field.send_keys("99999999999999999999")
    browser.find_element(By.NAME, "apply").click()
    assert browser.execute_script("return arguments[0].validity.rangeOverflow", field)
    assert browser.find_elements(By.NAME, "duration")  # still on the intermediate page
    browser.execute_script("arguments[0].removeAttribute('max')", field)  # as an old browser, or a forged POST
    submit(browser, browser.find_element(By.NAME, "apply"))
    errors = browser.find_element(By.CSS_SELECTOR, "ul.errorlist").text
    assert errors == "Enter at most 3153600000 seconds (100 years)."
    assert "keep-hot.txt" in browser.find_element(By.ID, "content").text
    assert not browser.find_elements(By.CSS_SELECTOR, "ul.messagelist li.error")
    assert PhysicalFile.objects.get().hot_until == f.hot_until


def test_adopt_an_orphan_from_the_orphans_page(admin_browser: Any, s3strata_settings: Env, settings: Any) -> None:
    env, browser = s3strata_settings, admin_browser
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    env.put("HOT", "public/found/photo.jpg", b"jpeg bytes")
    browser.get(f"{browser.base}/admin/s3strata/")
    submit(browser, browser.find_element(By.ID, "orphans-app-link"))
    assert "older than 0 seconds" in browser.find_element(By.ID, "content").text
    shot(browser, "orphans")
    row = browser.find_element(By.CSS_SELECTOR, "input[name=key][value='public/found/photo.jpg']")
    row.click()
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[value=adopt]"))
    assert "public/found/photo.jpg" in browser.find_element(By.ID, "content").text
    crumbs = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".breadcrumbs a")]
    assert crumbs == ["Home", "S3 tiered storage", "Physical files", "Orphan objects"]
    assert browser.find_element(By.CSS_SELECTOR, ".breadcrumbs").text.endswith("Adopt orphan objects")
    shot(browser, "orphans-confirm")
    submit(browser, browser.find_element(By.NAME, "confirm"))
    assert "1 orphan adopted." in messages(browser)
    record = PhysicalFile.objects.get()
    assert (record.path, record.filename, record.storage_tier) == ("public/found/photo.jpg", "photo.jpg", "HOT")
    assert "No orphans." in browser.find_element(By.ID, "orphan-list").text


@pytest.mark.seaweed
@pytest.mark.parametrize(
    ("size", "batch", "method"),
    [(300_000, None, "post"), (300_000, None, "put"), (11 * 1024 * 1024, None, "post"), (16 * 1024 * 1024, 1, "post")],
    ids=["post", "put", "multipart", "multipart-batches"],
)
def test_direct_upload_through_the_admin_widget(
    admin_browser: Any,
    seaweed_settings: Env,
    tmp_path: Path,
    size: int,
    batch: int | None,
    method: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """On SeaweedFS (signatures and POST policies enforced): the browser sends the file to S3 itself
    (one POST, one PUT with signed headers, or parts with PUT, their URLs signed a batch at a time);
    the form carries a signed ref."""
    from django_s3strata.core import direct
    from tests.testapp.models import Clip

    if batch is not None:  # one part URL per request: the widget asks the parts view for parts 2, 3 and 4
        monkeypatch.setattr(direct, "PART_BATCH", batch)
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": method}
    env, browser = seaweed_settings, admin_browser
    source = tmp_path / "holiday.mp4"
    source.write_bytes(bytes(range(256)) * (size // 256))
    browser.get(f"{browser.base}/admin/testapp/clip/add/")
    browser.find_element(By.NAME, "title").send_keys("Holiday")
    browser.find_element(By.NAME, "video").send_keys(str(source))
    box = browser.find_element(By.CSS_SELECTOR, ".s3strata-direct")
    WebDriverWait(browser, 60).until(lambda d: box.get_attribute("data-state") in ("done", "failed"))
    status = box.find_element(By.CSS_SELECTOR, ".s3strata-direct-status").text
    assert box.get_attribute("data-state") == "done", status
    assert status == "Uploaded holiday.mp4."
    shot(browser, f"direct-upload-{method}-{size}")
    assert browser.execute_script("return document.querySelector('.s3strata-direct progress').value") == 100
    # The file input is empty again: the form sends the ref, not the bytes.
    assert browser.execute_script("return document.querySelector('input[name=video]').files.length") == 0
    assert box.find_element(By.NAME, "video__s3strata_ref").get_attribute("value")
    record = PhysicalFile.objects.get()
    assert env.read("HOT", record.path) == source.read_bytes() and record.size == source.stat().st_size
    assert record.path.startswith("private/clips/20") and record.hot_until is not None

    submit(browser, browser.find_element(By.NAME, "_save"))
    clip = Clip.objects.get()
    assert (clip.title, clip.video_id) == ("Holiday", record.pk)
    assert PhysicalFile.objects.count() == 1


# -- the first hour ----------------------------------------------------------------------------


def shot(browser: Any, name: str) -> None:
    """Save the page as a person sees it to ``test-artifacts/<name>.png``, to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def absent(browser: Any, selector: str) -> bool:
    """Return True when nothing matches ``selector`` (without the implicit wait for it to appear)."""
    browser.implicitly_wait(0)
    try:
        return not browser.find_elements(By.CSS_SELECTOR, selector)
    finally:
        browser.implicitly_wait(5)


def test_a_physical_file_field_keeps_its_upload(admin_browser: Any, s3strata_settings: Env, tmp_path: Path) -> None:
    """No "+" popup next to the file input (RelatedObjectLookups.js cannot put its file into it):
    the file chosen in the input is stored and linked when the owner is saved, and nothing else."""
    from tests.testapp.models import Document

    env, browser = s3strata_settings, admin_browser
    source = tmp_path / "minutes.txt"
    source.write_bytes(b"the minutes")
    browser.get(f"{browser.base}/admin/testapp/document/add/")
    shot(browser, "document-add")
    assert absent(browser, ".related-widget-wrapper-link")
    browser.find_element(By.NAME, "title").send_keys("Minutes")
    browser.find_element(By.NAME, "attachment").send_keys(str(source))
    submit(browser, browser.find_element(By.NAME, "_continue"))
    document = Document.objects.get()
    record = PhysicalFile.objects.get()
    assert document.attachment_id == record.pk and env.read("HOT", record.path) == b"the minutes"
    assert "minutes.txt" in browser.find_element(By.CSS_SELECTOR, ".field-attachment").text
    assert absent(browser, ".related-widget-wrapper-link")
    shot(browser, "document-change")


def test_actions_say_what_was_skipped(admin_browser: Any) -> None:
    browser = admin_browser
    cold = get_file_manager().sync.upload(b"c", UploadOptions(filename="cold.txt", tier="COLD"))
    run_action(browser, "move_to_cold", [cold.pk])
    assert messages(browser) == ["1 file was already in COLD."]
    assert browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.warning")
    run_action(browser, "set_hot_duration", [cold.pk])
    assert messages(browser) == ["None of the selected files is HOT: only HOT files have a hot duration."]
    assert absent(browser, "input[name=duration]")
    shot(browser, "set-hot-duration-cold")


def test_change_page_moves_and_long_names_wrap(admin_browser: Any, s3strata_settings: Env) -> None:
    env, browser = s3strata_settings, admin_browser
    long_name = "quarterly-report-" + "x" * 180 + ".pdf"
    f = get_file_manager().sync.upload(b"%PDF", UploadOptions(filename=long_name, hot_duration=3600))
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/")
    tier = browser.find_element(By.CSS_SELECTOR, "#result_list td.field-storage_tier")
    visibility = browser.find_element(By.CSS_SELECTOR, "#result_list td.field-visibility_label")
    width = browser.execute_script("return document.documentElement.clientWidth")
    for cell in (tier, visibility):
        assert cell.is_displayed() and cell.rect["x"] + cell.rect["width"] <= width
    shot(browser, "changelist-long-name")

    browser.get(f"{browser.base}/admin/s3strata/physicalfile/{f.pk}/change/")
    name = browser.find_element(By.NAME, "filename")
    assert name.tag_name == "input" and name.get_attribute("value") == long_name
    assert "PRIVATE" in browser.find_element(By.CSS_SELECTOR, ".field-visibility_label").text
    shot(browser, "change-page")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[value=move_to_cold]"))
    assert messages(browser) == ["1 file moved to COLD."]
    assert browser.current_url.endswith(f"/admin/s3strata/physicalfile/{f.pk}/change/")
    record = PhysicalFile.objects.get()
    assert record.storage_tier == "COLD" and env.keys("COLD") == [record.path]
    submit(browser, browser.find_element(By.CSS_SELECTOR, "button[value=move_to_hot]"))
    assert messages(browser) == ["1 file moved to HOT, with no hot duration (it stays HOT until moved)."]
    assert PhysicalFile.objects.get().storage_tier == "HOT"
    shot(browser, "change-page-moved")


def test_the_open_link_shows_the_file_after_a_move(admin_browser: Any, s3strata_settings: Env) -> None:
    browser = admin_browser
    f = get_file_manager().sync.upload(b"Minutes of the March meeting.", UploadOptions(filename="minutes.txt"))
    browser.get(f"{browser.base}/admin/s3strata/physicalfile/")
    link = browser.find_element(By.CSS_SELECTOR, "#result_list td.field-open_link a")
    href = link.get_attribute("href")
    assert href == f"{browser.base}/s3strata/files/{f.pk}/?disposition=inline"
    shot(browser, "changelist-open-link")
    f.set_tier("COLD")  # the link on the page was made before the move
    link.click()
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) == 2)  # target=_blank
    browser.switch_to.window(browser.window_handles[1])
    try:
        WebDriverWait(browser, 10).until(lambda d: "Minutes of the March meeting." in d.find_element(By.TAG_NAME, "body").text)
        assert s3strata_settings.cold_bucket in browser.current_url  # redirected to where the file is now
        shot(browser, "open-link-followed")
    finally:
        browser.close()
        browser.switch_to.window(browser.window_handles[0])
