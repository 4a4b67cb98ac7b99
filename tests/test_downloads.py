"""The download view: permission-checked and signed links that survive moves, followed to the real bytes on S3."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.test import Client

from django_s3strata import get_file_manager, links
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env
from tests.testapp.models import Profile

pytestmark = pytest.mark.django_db


def follow(location: str) -> tuple[bytes, dict[str, str]]:
    """GET the URL the view redirected to (a real S3 server): its body and headers."""
    with urllib.request.urlopen(location, timeout=10) as resp:
        return resp.read(), dict(resp.headers)


def upload(data: bytes, name: str, **options: Any) -> PhysicalFile:
    record: PhysicalFile = get_file_manager().sync.upload(data, UploadOptions(filename=name, **options))
    return record


def viewer(client: Client, *perms: str) -> User:
    user = User.objects.create_user(f"u{User.objects.count()}", password="x")
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="s3strata"))
    client.force_login(user)
    return user


def only_staff(request: Any, file: PhysicalFile) -> bool:
    """A DOWNLOAD_AUTHORIZE hook for the tests: staff only, whatever the visibility."""
    return bool(request.user.is_staff)


def test_a_private_file_redirects_to_its_bytes_with_its_own_name(s3strata_settings: Env, client: Client) -> None:
    f = upload(b"%PDF the numbers", "Résumé 2026.pdf")
    viewer(client, "view_physicalfile")
    response = client.get(f.download_url())
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["60"]  # DOWNLOAD_URL_EXPIRES
    body, headers = follow(location)
    assert body == b"%PDF the numbers"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"R_sum_ 2026.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"
    )


def test_who_may_follow_a_link_by_id(s3strata_settings: Env, settings: Any) -> None:
    private = upload(b"secret", "secret.txt")
    public = upload(b"hello", "hello.txt", visibility="PUBLIC")
    anonymous, plain, allowed, editor = Client(), Client(), Client(), Client()
    viewer(plain)
    viewer(allowed, "view_physicalfile")
    viewer(editor, "change_physicalfile")  # as the admin: change implies view
    assert anonymous.get(private.download_url()).status_code == 403
    assert plain.get(private.download_url()).status_code == 403
    assert allowed.get(private.download_url()).status_code == 302
    assert editor.get(private.download_url()).status_code == 302
    public_response = anonymous.get(public.download_url())
    assert public_response.status_code == 302
    assert follow(public_response["Location"])[0] == b"hello"  # presigned too: it carries the name
    assert anonymous.get("/s3strata/files/999999/").status_code == 404
    settings.S3STRATA = {**settings.S3STRATA, "DOWNLOAD_AUTHORIZE": "tests.test_downloads.only_staff"}
    assert anonymous.get(public.download_url()).status_code == 403
    assert allowed.get(private.download_url()).status_code == 403
    staff = Client()
    User.objects.filter(pk=viewer(staff).pk).update(is_staff=True)
    assert staff.get(private.download_url()).status_code == 302


def test_a_signed_link_lets_anyone_holding_it_download(s3strata_settings: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    f = upload(b"shared with a client", "offer.pdf")
    client = Client()
    signed = f.download_url(signed=True)
    assert signed.startswith("/s3strata/files/t/")
    response = client.get(signed)
    assert response.status_code == 302 and follow(response["Location"])[0] == b"shared with a client"
    token = signed.rsplit("/", 2)[-2]
    other = upload(b"someone else's", "other.pdf")
    payload = links.signing.b64_encode(f'{{"i":{other.pk}}}'.encode()).decode()
    assert client.get(f"/s3strata/files/t/{payload}:{token.split(':', 1)[1]}/").status_code == 404
    # Altered: another id in the payload, a flipped signature character, a token of another salt.
    assert client.get(f"/s3strata/files/t/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}/").status_code == 404
    forged = links.signing.dumps({"i": f.pk})  # right payload, no salt: not ours
    assert client.get(f"/s3strata/files/t/{forged}/").status_code == 404
    assert client.get("/s3strata/files/t/not-a-token/").status_code == 404
    # Time-limited: valid now, refused once its limit has passed.
    limited = f.download_url(signed=True, expires_in=60)
    assert client.get(limited).status_code == 302
    real_time = time.time
    monkeypatch.setattr(links.time, "time", lambda: real_time() + 61)
    expired = client.get(limited)
    assert expired.status_code == 403 and client.get(signed).status_code == 302
    monkeypatch.undo()
    f.delete()
    assert client.get(signed).status_code == 404


def test_head_is_answered_and_post_is_not(s3strata_settings: Env, client: Client) -> None:
    f = upload(b"x", "x.txt", visibility="PUBLIC")
    head = client.head(f.download_url())
    assert head.status_code == 302 and head["Location"].startswith("http://127.0.0.1") and head.content == b""
    assert head["Cache-Control"] == "private, no-store"
    assert client.post(f.download_url()).status_code == 405


def test_disposition_inline_but_never_for_active_content(s3strata_settings: Env, client: Client) -> None:
    viewer(client, "view_physicalfile")
    text = upload(b"plain", "notes.txt")
    page = upload(b"<script>alert(1)</script>", "page.html")
    _, headers = follow(client.get(text.download_url(disposition="inline"))["Location"])
    assert headers["Content-Disposition"].startswith("inline; filename=")
    _, headers = follow(client.get(page.download_url(disposition="inline"))["Location"])
    assert headers["Content-Disposition"].startswith("attachment; filename=")
    assert client.get(f"{text.download_url()}?disposition=evil").status_code == 400


def test_a_link_survives_tier_and_visibility_moves(s3strata_settings: Env) -> None:
    env = s3strata_settings
    f = upload(b"moving bytes", "move.bin")
    client = Client()
    signed, by_id = f.download_url(signed=True), f.download_url()
    old_url = client.get(signed)["Location"]
    f.set_tier("COLD")
    f.set_visibility("PUBLIC")
    assert env.keys("HOT") == [] and env.keys("COLD") == [f.path]
    with pytest.raises(urllib.error.HTTPError):
        follow(old_url)  # a URL of the object's old key stops working after a move
    for link in (signed, by_id):
        response = client.get(link)
        assert response.status_code == 302 and env.cold_bucket in response["Location"]
        assert follow(response["Location"])[0] == b"moving bytes"


def test_fields_and_storage_hand_out_view_links(s3strata_settings: Env, client: Client) -> None:
    profile = Profile.objects.create(
        name="ada", photo=ContentFile(b"\x89PNG photo", name="ada.png"), cv=ContentFile(b"cv bytes", name="cv.pdf")
    )
    profile = Profile.objects.select_related("photo").get()
    assert profile.photo.url == f"/s3strata/files/{profile.photo_id}/"  # url_mode="view"
    assert profile.photo.get_url().startswith("http://127.0.0.1")  # the object's own URL is still there
    assert profile.cv.url.startswith("/s3strata/files/t/")  # S3StrataStorage(url_mode="signed")
    viewer(client, "view_physicalfile")
    assert follow(client.get(profile.photo.url)["Location"])[0] == b"\x89PNG photo"
    assert follow(Client().get(profile.cv.url)["Location"])[0] == b"cv bytes"
    profile.photo.set_tier("COLD")
    assert follow(client.get(Profile.objects.get().photo.url)["Location"])[0] == b"\x89PNG photo"


def test_signed_links_expire_after_a_week_by_default_and_sign_their_disposition(
    s3strata_settings: Env, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = upload(b"plain words", "notes.txt")
    client = Client()
    real_time = time.time

    def status_after(link: str, seconds: float) -> int:
        monkeypatch.setattr(links.time, "time", lambda: real_time() + seconds)
        try:
            return client.get(link).status_code
        finally:
            monkeypatch.setattr(links.time, "time", real_time)

    week = 7 * 86400
    signed = f.download_url(signed=True)  # no expires_in: DOWNLOAD_TOKEN_MAX_AGE, a week
    assert (status_after(signed, week - 60), status_after(signed, week + 60)) == (302, 403)
    settings.S3STRATA = {**settings.S3STRATA, "DOWNLOAD_TOKEN_MAX_AGE": 3600}
    hour = f.download_url(signed=True)
    assert (status_after(hour, 3500), status_after(hour, 3700)) == (302, 403)
    assert status_after(f.download_url(signed=True, expires_in=86400), 3700) == 302  # expires_in wins
    settings.S3STRATA = {**settings.S3STRATA, "DOWNLOAD_TOKEN_MAX_AGE": None}
    assert status_after(f.download_url(signed=True), 10 * 365 * 86400) == 302  # None: no expiry

    # The disposition is in the token; a ?disposition= added to a token link is not signed: ignored.
    inline = f.download_url(signed=True, disposition="inline")
    assert "?" not in inline and links.load_token_data(inline.rsplit("/", 2)[-2])[1] == "inline"
    _, headers = follow(client.get(inline)["Location"])
    assert headers["Content-Disposition"].startswith("inline; filename=")
    for tampered in (f"{signed}?disposition=inline", f"{inline}?disposition=attachment", f"{signed}?disposition=evil"):
        response = client.get(tampered)
        assert response.status_code == 302
        asked = "inline" if tampered.startswith(inline) else "attachment"
        assert follow(response["Location"])[1]["Content-Disposition"].startswith(f"{asked}; filename=")


@pytest.mark.parametrize("bad", [0, -5, "week", True, 1.5])
def test_a_bad_download_token_max_age_is_refused_by_name(s3strata_settings: Env, settings: Any, bad: Any) -> None:
    from django_s3strata import conf
    from django_s3strata.core.exceptions import ConfigurationError

    settings.S3STRATA = {**settings.S3STRATA, "DOWNLOAD_TOKEN_MAX_AGE": bad}
    with pytest.raises(ConfigurationError, match=r"DOWNLOAD_TOKEN_MAX_AGE'\]=.* is invalid"):
        conf.get_settings()
