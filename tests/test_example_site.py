"""The demo: `manage.py demo` in its own process, driven over HTTP like a visitor would."""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3STRATA_", "DJANGO_"))}
    env.update(S3STRATA_DEMO_DATA=str(tmp_path), PYTHONUNBUFFERED="1")
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
