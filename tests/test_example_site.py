"""The demo: `manage.py demo` (and `./dev demo`) in its own process, driven over HTTP and in Chromium like a visitor would."""

from __future__ import annotations

import html
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser import chromium, needs_browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts"
browser_test = needs_browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3STRATA_", "DJANGO_"))}
    env.update(S3STRATA_DEMO_DATA=str(data), PYTHONUNBUFFERED="1")
    return env


def _rows(data: Path) -> list[tuple[str, str, str, int]]:
    """Return (filename, tier, visibility, size) of the demo's rows, read from its SQLite file."""
    with closing(sqlite3.connect(data / "db.sqlite3")) as db:
        rows = db.execute("SELECT filename, storage_tier, path, size FROM s3strata_physicalfile ORDER BY id").fetchall()
    # The visibility is the key's prefix (public/ or private/ in the demo).
    return [(name, tier, path.split("/", 1)[0].upper(), size) for name, tier, path, size in rows]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = _free_port()
    env = _demo_env(tmp_path)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "Starting development server" not in log.read_text() and "Quit the server" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        password = re.search(r"login: demo / (\S+)\)", log.read_text())
        assert password, log.read_text()
        yield f"http://127.0.0.1:{port}", password.group(1)
    finally:
        proc.terminate()
        proc.wait(20)


def test_demo_uploads_lists_and_serves_the_bytes(demo: tuple[str, str]) -> None:
    site, password = demo
    with requests.Session() as browser:
        page = browser.get(site + "/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        payload = b"hello from the demo \x00\x01"
        done = browser.post(
            site + "/",
            data={"csrfmiddlewaretoken": token, "tier": "HOT", "visibility": "PRIVATE", "hot_duration": "0"},
            files={"file": ("greeting.bin", payload, "application/octet-stream")},
            timeout=30,
        )
        assert done.status_code == 200 and "Stored greeting.bin in HOT." in done.text
        assert '<span class="badge HOT">HOT</span>' in done.text and '<span class="badge PRIVATE">PRIVATE</span>' in done.text
        url = html.unescape(re.search(r'class="file-url" href="([^"]+)"', done.text).group(1))  # type: ignore[union-attr]
        assert "X-Amz-Signature" in url
        assert requests.get(url, timeout=10).content == payload  # straight from S3
        download = re.search(r'href="(/files/\d+/download/)"', done.text).group(1)  # type: ignore[union-attr]
        assert browser.get(site + download, timeout=10).content == payload  # streamed through Django
        assert "greeting.bin" in browser.get(site + "/archival/", timeout=10).text  # hot_duration 0: due now
        pk = re.search(r'data-id="(\d+)"', done.text).group(1)  # type: ignore[union-attr]
        moved = browser.post(f"{site}/files/{pk}/change/", data={"csrfmiddlewaretoken": token, "to": "PUBLIC"}, timeout=30)
        assert "is now HOT, PUBLIC" in moved.text
        public = html.unescape(re.search(r'class="file-url" href="([^"]+)"', moved.text).group(1))  # type: ignore[union-attr]
        assert "X-Amz" not in public and requests.get(public, timeout=10).content == payload
        login = browser.get(site + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        admin = browser.post(
            site + "/admin/login/?next=/admin/s3strata/physicalfile/",
            data={
                "csrfmiddlewaretoken": token,
                "username": "demo",
                "password": password,
                "next": "/admin/s3strata/physicalfile/",
            },
            timeout=10,
        )
        assert "greeting.bin" in admin.text


def test_demo_takes_a_direct_upload(demo: tuple[str, str]) -> None:
    """The demo's second form: the file goes to the embedded S3 server, the form carries a signed ref."""
    site, _ = demo
    with requests.Session() as browser:
        page = browser.get(site + "/", timeout=10)
        assert 'class="s3strata-direct"' in page.text
        assert browser.get(site + "/static/s3strata/direct-upload.js", timeout=10).status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        policy = html.unescape(re.search(r'data-policy="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
        payload = b"sent straight to the bucket"
        headers = {"X-CSRFToken": token, "Referer": site + "/"}
        grant = browser.post(
            site + "/s3strata/uploads/",
            json={"policy": policy, "filename": "direct.txt", "size": len(payload), "content_type": "text/plain"},
            headers=headers,
            timeout=10,
        ).json()
        sent = requests.post(grant["url"], data=grant["fields"], files={"file": ("direct.txt", payload)}, timeout=10)
        assert sent.status_code in (200, 201, 204)
        done = browser.post(
            site + "/s3strata/uploads/finalize/", json={"ticket": grant["ticket"]}, headers=headers, timeout=10
        ).json()
        saved = browser.post(
            site + "/",
            data={"csrfmiddlewaretoken": token, "direct": "1", "direct-file__s3strata_ref": done["ref"]},
            timeout=10,
        )
        assert "Stored direct.txt in HOT." in saved.text
        url = html.unescape(re.search(r'class="file-url" href="([^"]+)"', saved.text).group(1))  # type: ignore[union-attr]
        assert requests.get(url, timeout=10).content == payload


# -- a second demo ---------------------------------------------------------------------------------


def _run_demo(command: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    # A demo that is not refused would serve until killed: the timeout fails the test then.
    return subprocess.run(command, cwd=ROOT, env=_demo_env(data), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [[sys.executable, "manage.py", "demo"], ["./dev", "demo"]], ids=["manage.py", "dev"])
def test_a_busy_port_is_refused_before_anything_is_touched(tmp_path: Path, command: list[str]) -> None:
    """`./dev demo` (before it installs anything) and `manage.py demo` say in one line that the port is taken,
    and leave the database alone."""
    database = tmp_path / "db.sqlite3"
    database.write_bytes(b"another demo's database")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        done = _run_demo([*command, f"127.0.0.1:{port}"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port} is already in use" in done.stderr, done.stderr
    assert "login" not in done.stdout
    assert database.read_bytes() == b"another demo's database"
    assert time.monotonic() - started < 30


def test_a_second_demo_never_resets_a_running_ones_database(demo: tuple[str, str], tmp_path: Path) -> None:
    """The same address is refused as taken; another address with the same data directory is refused as
    the running demo's: either way the running demo keeps its rows."""
    site, _ = demo
    with requests.Session() as browser:
        page = browser.get(site + "/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        stored = browser.post(
            site + "/",
            data={"csrfmiddlewaretoken": token, "tier": "HOT", "visibility": "PRIVATE"},
            files={"file": ("keep-me.txt", b"still here")},
            timeout=30,
        )
        assert "Stored keep-me.txt in HOT." in stored.text
    same = _run_demo([sys.executable, "manage.py", "demo", site.removeprefix("http://")], tmp_path)
    assert same.returncode == 1 and "is already in use" in same.stderr, same.stdout + same.stderr
    other = _run_demo([sys.executable, "manage.py", "demo", f"127.0.0.1:{_free_port()}"], tmp_path)
    assert other.returncode == 1, other.stdout + other.stderr
    assert re.fullmatch(r"CommandError: another demo \(pid \d+\) is using .*db\.sqlite3: .*\n", other.stderr), other.stderr
    assert "login" not in same.stdout + other.stdout
    assert [row[0] for row in _rows(tmp_path)] == ["keep-me.txt"]
    assert "keep-me.txt" in requests.get(site + "/", timeout=10).text


# -- the home page in Chromium ---------------------------------------------------------------------


def test_a_form_shown_again_with_its_upload_does_not_require_a_file() -> None:
    """A form shown again after an error keeps the direct upload in its hidden ref: the empty file
    input must not be required then, or the browser refuses the corrected form."""
    from django import forms

    from django_s3strata.forms import DirectUploadField

    class ClipForm(forms.Form):
        title = forms.CharField()
        video = DirectUploadField()

    assert " required" in str(ClipForm()["video"])
    shown_again = ClipForm({"title": "", "video__s3strata_ref": "the-ref"})
    assert not shown_again.is_valid() and "title" in shown_again.errors
    rendered = str(shown_again["video"])
    file_input = re.search(r"<input type=\"file\"[^>]*>", rendered).group(0)  # type: ignore[union-attr]
    assert " required" not in file_input and 'data-s3strata-required="1"' in file_input
    assert 'value="the-ref"' in rendered and 'data-state="done"' in rendered


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from chromium(tmp_path_factory)


def _screenshot(browser: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _click_and_wait(browser: Any, element: Any) -> None:
    """Click ``element`` and wait until the next page has replaced this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_: Any) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale: the page is gone
            return True
        return False

    WebDriverWait(browser, 30).until(replaced)
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _assert_no_horizontal_scroll(browser: Any) -> None:
    """Long file names wrap: the page is never wider than the window."""
    width, window = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width <= window, f"the page is {width} px wide in a {window} px window"


def _form_valid(browser: Any, form_id: str) -> bool:
    return bool(browser.execute_script("return document.getElementById(arguments[0]).checkValidity()", form_id))


@browser_test
def test_direct_upload_then_save_shows_the_row(demo: tuple[str, str], driver: Any, tmp_path: Path) -> None:
    """The home page's direct upload in a real browser: once the file is in S3, Save submits the form (the
    file input is empty but the ref carries the file), and the row shows in the tier and visibility chosen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    site, _ = demo
    source = tmp_path / "field-notes.txt"
    source.write_bytes(b"notes sent straight to the bucket")
    browser = driver
    browser.get(site + "/")
    assert not _form_valid(browser, "direct-upload")  # no file and no ref: the browser refuses the form
    box = browser.find_element(By.CSS_SELECTOR, "#direct-upload .s3strata-direct")

    def upload() -> None:
        browser.find_element(By.NAME, "direct-file").send_keys(str(source))
        WebDriverWait(browser, 30).until(lambda _: box.get_attribute("data-state") in ("done", "failed"))
        assert box.get_attribute("data-state") == "done", box.text

    upload()  # HOT and PRIVATE, the choices shown
    # The tier changed after the upload: that file went under the other policy, so it is asked for again.
    Select(browser.find_element(By.NAME, "direct-tier")).select_by_value("COLD")
    assert "choose the file again" in box.text
    assert not _form_valid(browser, "direct-upload")
    Select(browser.find_element(By.NAME, "direct-visibility")).select_by_value("PUBLIC")
    upload()
    _screenshot(browser, "demo-direct-uploaded")
    assert browser.execute_script("return document.querySelector('input[name=direct-file]').files.length") == 0
    assert _form_valid(browser, "direct-upload"), "the browser refuses the form: the empty file input is still required"
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#direct-upload button[name=direct]"))
    _screenshot(browser, "demo-direct-saved")
    assert "Stored field-notes.txt in COLD." in browser.find_element(By.CSS_SELECTOR, ".msg").text
    # Finalize records each upload; the first one (HOT, PRIVATE) was never saved in a form.
    assert _rows(tmp_path)[-1] == ("field-notes.txt", "COLD", "PUBLIC", source.stat().st_size)
    rows = browser.find_elements(By.CSS_SELECTOR, "#files tbody tr[data-id]")
    row = max(rows, key=lambda r: int(r.get_attribute("data-id")))
    assert "field-notes.txt" in row.text and "COLD" in row.text and "PUBLIC" in row.text
    url = row.find_element(By.CSS_SELECTOR, "a.file-url").get_attribute("href")
    assert "X-Amz" not in url and requests.get(url, timeout=10).content == source.read_bytes()


@browser_test
def test_plain_upload_shows_progress_sizes_and_asks_before_delete(demo: tuple[str, str], driver: Any, tmp_path: Path) -> None:
    """A 20 MiB file with a long name through the plain form: a progress bar while it uploads, "20.0 MiB"
    in the list, a name that wraps instead of widening the page, and a confirmation before delete."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    site, _ = demo
    name = "quarterly_report_" + "with_a_very_long_name_" * 8 + "final.bin"  # no hyphen: nowhere to break
    source = tmp_path / name
    source.write_bytes(os.urandom(1024) * 20 * 1024)
    browser = driver
    browser.get(site + "/")
    _screenshot(browser, "demo-home-empty")
    browser.find_element(By.NAME, "file").send_keys(str(source))
    browser.set_network_conditions(offline=False, latency=0, download_throughput=-1, upload_throughput=5 * 1024 * 1024)
    try:
        browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
        status = browser.find_element(By.ID, "upload-status")
        midway = re.compile(r"MiB of 20\.0 MiB \((?:[1-9]|[1-8]\d)%\)")
        WebDriverWait(browser, 30, poll_frequency=0.1).until(lambda _: midway.search(status.text))
        _screenshot(browser, "demo-plain-upload-progress")
        assert 0 < float(browser.find_element(By.ID, "upload-progress").get_attribute("value")) < 100
        _assert_no_horizontal_scroll(browser)
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg"))
    finally:
        browser.delete_network_conditions()
    assert browser.find_element(By.CSS_SELECTOR, ".msg").text == f"Stored {name} in HOT."
    row = browser.find_element(By.CSS_SELECTOR, "#files tbody tr[data-id]")
    size = row.find_element(By.CSS_SELECTOR, "td.size")
    assert (size.text, size.get_attribute("title")) == ("20.0 MiB", "20971520 bytes")
    _assert_no_horizontal_scroll(browser)
    _screenshot(browser, "demo-home-files")
    delete = row.find_element(By.CSS_SELECTOR, "button[value=delete]")
    delete.click()
    alert = WebDriverWait(browser, 5).until(expected_conditions.alert_is_present())
    assert alert.text.startswith(f"Delete {name}?")
    alert.dismiss()
    assert [r[0] for r in _rows(tmp_path)] == [name]
    delete.click()
    WebDriverWait(browser, 5).until(expected_conditions.alert_is_present()).accept()
    WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: "No files yet" in d.find_element(By.ID, "files").text
    )
    assert browser.find_element(By.CSS_SELECTOR, ".msg").text == f"Deleted {name}."
    assert _rows(tmp_path) == []
