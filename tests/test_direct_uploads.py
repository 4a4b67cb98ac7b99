"""Direct browser-to-S3 uploads, against SeaweedFS (which enforces POST policies and signatures) and moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_s3strata import operations
from django_s3strata.core import StorageTier
from django_s3strata.core.direct import iter_pending_uploads
from django_s3strata.models import PhysicalFile
from django_s3strata.services import get_file_manager
from django_s3strata.uploads import UploadPolicy
from tests.conftest import Env
from tests.testapp.models import Clip

MiB = 1024 * 1024
START, FINALIZE = "/s3strata/uploads/", "/s3strata/uploads/finalize/"
pytestmark = pytest.mark.django_db
# The moto tests need one endpoint only: where the tiers live changes nothing here.
one_endpoint = pytest.mark.parametrize("env", ["shared"], indirect=True)


# -- fixtures --------------------------------------------------------------------------------


def uploader(name: str = "uploader", *, allowed: bool = True) -> Client:
    user = User.objects.create_user(name, password="pw")
    if allowed:
        user.user_permissions.add(Permission.objects.get(codename="add_physicalfile"))
    client = Client()
    client.force_login(user)
    return client


def call(client: Client, url: str, **data: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(url, data=json.dumps(data), content_type="application/json")
    return response.status_code, response.json()


def post_to_s3(grant: dict[str, Any], body: bytes, fields: dict[str, str] | None = None) -> requests.Response:
    return requests.post(grant["url"], data=fields or grant["fields"], files={"file": ("upload.bin", body)}, timeout=30)


def put_parts(grant: dict[str, Any], body: bytes) -> list[int]:
    statuses = []
    for part in grant["parts"]:
        start = (part["number"] - 1) * grant["part_size"]
        statuses.append(requests.put(part["url"], data=body[start : start + part["size"]], timeout=30).status_code)
    return statuses


# -- the whole flow, on SeaweedFS ------------------------------------------------------------------


@pytest.mark.seaweed
def test_post_upload_lands_and_is_recorded(seaweed_settings: Env) -> None:
    env, client = seaweed_settings, uploader()
    body = b"%PDF-1.7 straight to the bucket"
    status, grant = call(client, START, filename="report.pdf", size=len(body), content_type="application/pdf")
    assert status == 200 and grant["method"] == "post"
    key = grant["key"]
    assert key.startswith("private/") and key.endswith("-report.pdf") and grant["tier"] == "HOT"
    assert PhysicalFile.objects.count() == 0  # nothing recorded before the bytes arrive

    assert post_to_s3(grant, body).status_code in (200, 201, 204)
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    record = PhysicalFile.objects.get(pk=done["id"])
    assert (record.storage_tier, record.path, record.filename) == ("HOT", key, "report.pdf")
    assert (record.size, record.content_type) == (len(body), "application/pdf")
    assert env.read("HOT", key) == body
    # The recorded file serves through a presigned URL that downloads the same bytes.
    assert requests.get(record.url, timeout=10).content == body
    # Finalizing again is harmless: the same row, no second one.
    assert call(client, FINALIZE, ticket=grant["ticket"])[1]["id"] == record.pk
    assert PhysicalFile.objects.count() == 1


@pytest.mark.seaweed
def test_multipart_upload_parts_then_finalize(seaweed_settings: Env) -> None:
    env, client = seaweed_settings, uploader()
    body = bytes(range(256)) * (11 * MiB // 256)  # 11 MiB: three parts of 5, 5 and 1 MiB
    status, grant = call(client, START, filename="clip.mp4", size=len(body), content_type="video/mp4")
    assert status == 200 and grant["method"] == "multipart"
    assert [p["size"] for p in grant["parts"]] == [5 * MiB, 5 * MiB, MiB]

    assert put_parts({**grant, "parts": grant["parts"][:2]}, body) == [200, 200]
    status, early = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 409 and "1 of 3 parts" in early["error"] and PhysicalFile.objects.count() == 0

    assert put_parts({**grant, "parts": grant["parts"][2:]}, body) == [200]
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    record = PhysicalFile.objects.get(pk=done["id"])
    assert env.read("HOT", record.path) == body and record.size == len(body) and record.content_type == "video/mp4"


@pytest.mark.seaweed
def test_the_client_cannot_choose_the_key_size_or_type(seaweed_settings: Env) -> None:
    env, client = seaweed_settings, uploader()
    body = b"exactly these bytes"
    _, grant = call(client, START, filename="a.txt", size=len(body), content_type="text/plain")

    elsewhere = {**grant["fields"], "key": "public/evil.txt"}
    assert post_to_s3(grant, body, elsewhere).status_code == 403
    outside = {**grant["fields"], "key": "../../other-bucket/x"}
    assert post_to_s3(grant, body, outside).status_code in (400, 403)
    retyped = {**grant["fields"], "Content-Type": "text/html"}
    assert post_to_s3(grant, body, retyped).status_code == 403
    assert post_to_s3(grant, body + b" and more").status_code == 400  # over the signed length
    assert env.keys("HOT") == [] and env.keys("COLD") == []

    status, _ = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 409 and PhysicalFile.objects.count() == 0


@pytest.mark.seaweed
def test_a_part_longer_than_granted_is_refused(seaweed_settings: Env) -> None:
    client = uploader()
    size = 7 * MiB
    _, grant = call(client, START, filename="big.bin", size=size)
    first = grant["parts"][0]
    response = requests.put(first["url"], data=b"x" * (first["size"] + 1), timeout=30)
    assert response.status_code == 403  # the part's Content-Length is signed


@pytest.mark.seaweed
def test_nobody_finalizes_someone_elses_upload(seaweed_settings: Env) -> None:
    alice, mallory = uploader("alice"), uploader("mallory")
    body = b"alice's file"
    _, grant = call(alice, START, filename="a.txt", size=len(body))
    assert post_to_s3(grant, body).status_code in (200, 201, 204)
    status, answer = call(mallory, FINALIZE, ticket=grant["ticket"])
    assert status == 403 and "someone else" in answer["error"]
    assert PhysicalFile.objects.count() == 0
    forged = grant["ticket"][:-4] + ("AAAA" if not grant["ticket"].endswith("AAAA") else "BBBB")
    status, answer = call(alice, FINALIZE, ticket=forged)
    assert status == 400 and "not valid" in answer["error"]
    assert call(alice, FINALIZE, ticket=grant["ticket"])[0] == 200


# -- refusals before anything is signed ------------------------------------------------------------


@one_endpoint
def test_who_may_start_an_upload(s3strata_settings: Env) -> None:
    anonymous = Client()
    assert call(anonymous, START, filename="a.txt", size=3)[0] == 403
    assert call(uploader("no-perm", allowed=False), START, filename="a.txt", size=3)[0] == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.create_user("allowed"))
    User.objects.get(username="allowed").user_permissions.add(Permission.objects.get(codename="add_physicalfile"))
    response = strict.post(START, data=json.dumps({"filename": "a.txt", "size": 3}), content_type="application/json")
    assert response.status_code == 403 and b"CSRF" in response.content  # no CSRF token
    assert Client().get(START).status_code == 405


@one_endpoint
def test_authorize_hook_and_permission_settings(s3strata_settings: Env, settings: Any) -> None:
    client = uploader("plain", allowed=False)
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_PERMISSION": None}
    assert call(client, START, filename="a.txt", size=3)[0] == 200
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_AUTHORIZE": "tests.test_direct_uploads.only_pdfs_policy"}
    assert call(client, START, filename="a.txt", size=3)[0] == 403
    policy = UploadPolicy(content_types=("application/pdf",)).sign()
    assert call(client, START, filename="a.pdf", size=3, policy=policy)[0] == 200


def only_pdfs_policy(request: Any, policy: UploadPolicy) -> bool:
    return policy.content_types == ("application/pdf",)


@one_endpoint
@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"filename": "a.txt", "size": -1}, 400, "size=-1 is invalid"),
        ({"filename": "a.txt", "size": "lots"}, 400, "size='lots' is invalid"),
        ({"filename": "a.txt"}, 400, "size=None is invalid"),
        ({"filename": "", "size": 3}, 400, "filename is empty"),
        ({"filename": "a\x00.txt", "size": 3}, 400, "control characters"),
        ({"filename": "big.bin", "size": 2000}, 413, "File too large: 2000 bytes"),
        ({"filename": "page.html", "size": 3, "content_type": "text/html"}, 400, "not accepted here"),
        ({"filename": "a.txt", "size": 3, "policy": "forged"}, 400, "policy is not valid"),
    ],
)
def test_bad_requests_get_clear_errors(
    s3strata_settings: Env, settings: Any, data: dict[str, Any], status: int, message: str
) -> None:
    settings.S3STRATA = {
        **settings.S3STRATA,
        "ADVANCED": {"MAX_FILE_SIZE": 1000},
        "DIRECT_UPLOAD_CONTENT_TYPES": ["text/plain", "image/*", "application/octet-stream"],
    }
    got, answer = call(uploader(), START, **data)
    assert got == status and message in answer["error"], answer
    assert s3strata_settings.keys("HOT") == []


@one_endpoint
def test_not_json_is_refused(s3strata_settings: Env) -> None:
    response = uploader().post(START, data="[1, 2]", content_type="application/json")
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


@one_endpoint
def test_a_policy_fixes_tier_visibility_and_folder(s3strata_settings: Env) -> None:
    policy = UploadPolicy(tier="COLD", visibility="PUBLIC", upload_to="scans/%Y").sign()
    status, grant = call(uploader(), START, filename="../../etc/passwd", size=4, policy=policy)
    assert status == 200
    assert grant["tier"] == "COLD" and grant["visibility"] == "PUBLIC"
    assert grant["key"].startswith("public/scans/20") and grant["key"].endswith("-passwd") and ".." not in grant["key"]


# -- finalize checks what landed (moto: it does not enforce POST policies, so a wrong object can land) --


@one_endpoint
def test_finalize_removes_an_object_that_breaks_its_grant(s3strata_settings: Env) -> None:
    env, client = s3strata_settings, uploader()
    _, grant = call(client, START, filename="a.txt", size=5, content_type="text/plain")
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=b"far more than five bytes")
    status, answer = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 400 and "24 bytes where 5 were granted" in answer["error"]
    assert env.keys("HOT") == [] and PhysicalFile.objects.count() == 0


@one_endpoint
def test_finalize_records_hot_duration_and_filename(s3strata_settings: Env) -> None:
    env, client = s3strata_settings, uploader()
    policy = UploadPolicy(hot_duration=600).sign()
    _, grant = call(client, START, filename="notes.txt", size=5, policy=policy)
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=b"notes", ContentType="text/plain")
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200
    record = PhysicalFile.objects.get(pk=done["id"])
    assert record.filename == "notes.txt" and record.hot_until is not None
    assert 590 <= (record.hot_until - record.created_at).total_seconds() <= 610


@pytest.mark.seaweed
def test_abandoned_multipart_uploads_are_aborted_by_the_sweep(seaweed_settings: Env) -> None:
    env = seaweed_settings
    status, grant = call(uploader(), START, filename="never.bin", size=12 * MiB)
    assert status == 200 and grant["method"] == "multipart"
    assert put_parts({**grant, "parts": grant["parts"][:1]}, b"p" * 12 * MiB) == [200]
    store = get_file_manager().objectstore
    assert [u.key for u in iter_pending_uploads(store, StorageTier.HOT)] == [grant["key"]]

    kept = operations.sweep_orphans("delete")  # started just now: inside the grace period
    assert (kept.unfinished_uploads, kept.aborted_uploads) == (0, 0)
    assert [u.key for u in iter_pending_uploads(store, StorageTier.HOT)] == [grant["key"]]
    report = operations.sweep_orphans("report", older_than=0)
    assert (report.unfinished_uploads, report.aborted_uploads) == (1, 0)
    swept = operations.sweep_orphans("delete", older_than=0)
    assert (swept.unfinished_uploads, swept.aborted_uploads) == (1, 1)
    assert list(iter_pending_uploads(store, StorageTier.HOT)) == [] and env.keys("HOT") == []
    # The abandoned ticket can no longer be finalized into a record.
    assert call(uploader("late"), FINALIZE, ticket=grant["ticket"])[0] == 403
    assert PhysicalFile.objects.count() == 0


# -- the form field ----------------------------------------------------------------------------------


def clip_form() -> Any:
    from django import forms

    class ClipForm(forms.ModelForm):  # type: ignore[type-arg]
        class Meta:
            model = Clip
            fields = ["title", "video"]

    return ClipForm


@one_endpoint
def test_form_saves_the_file_a_ref_names(s3strata_settings: Env) -> None:
    from django_s3strata.uploads import make_ref

    env, client = s3strata_settings, uploader()
    _, grant = call(client, START, filename="c.mp4", size=4)
    env.put("HOT", grant["key"], b"clip")
    _, done = call(client, FINALIZE, ticket=grant["ticket"])
    form = clip_form()(data={"title": "t", "video__s3strata_ref": done["ref"]})
    assert form.is_valid(), form.errors
    clip = form.save()
    assert clip.video_id == done["id"] and env.read("HOT", clip.video.path) == b"clip"
    again = clip_form()(data={"title": "u", "video__s3strata_ref": make_ref(clip.video)})
    assert again.is_valid() and again.save().video_id == done["id"]

    forged = clip_form()(data={"title": "t", "video__s3strata_ref": "1:forged"})
    assert not forged.is_valid() and "not valid" in str(forged.errors["video"])


@one_endpoint
def test_form_without_javascript_uploads_through_django(s3strata_settings: Env) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    env = s3strata_settings
    form = clip_form()(data={"title": "t"}, files={"video": SimpleUploadedFile("plain.mp4", b"no js here")})
    assert form.is_valid(), form.errors
    clip = form.save()
    assert env.read("HOT", clip.video.path) == b"no js here" and clip.video.path.startswith("private/clips/20")


@one_endpoint
def test_widget_renders_the_direct_upload_box(s3strata_settings: Env, settings: Any) -> None:
    html = str(clip_form()()["video"])
    assert 'class="s3strata-direct"' in html and f'data-start-url="{START}"' in html and 'name="video__s3strata_ref"' in html
    policy = UploadPolicy.load(html.split('data-policy="')[1].split('"')[0])
    assert policy.upload_to == "clips/%Y" and policy.hot_duration == 600
    assert "s3strata/direct-upload.js" in str(clip_form()().media)
    bound = clip_form()(data={"title": "", "video__s3strata_ref": "kept-ref"})
    assert not bound.is_valid() and 'value="kept-ref"' in str(bound["video"])  # an error keeps the upload
    settings.ROOT_URLCONF = "tests.urls_without_s3strata"
    assert "s3strata-direct" not in str(clip_form()()["video"])  # URLs not included: a plain file input


@one_endpoint
def test_racing_finalizes_keep_one_row_and_the_object(s3strata_settings: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env, client = s3strata_settings, uploader()
    _, grant = call(client, START, filename="a.txt", size=4)
    env.put("HOT", grant["key"], b"race")
    original = operations.adopt_object
    rival: list[PhysicalFile] = []

    def another_finalize_wins_first(*args: Any, **kwargs: Any) -> PhysicalFile:
        if not rival:
            rival.append(original(*args, **kwargs))  # the other request's row, committed just before ours
        return original(*args, **kwargs)

    monkeypatch.setattr(operations, "adopt_object", another_finalize_wins_first)
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200 and done["id"] == rival[0].pk
    assert list(PhysicalFile.objects.values_list("pk", flat=True)) == [rival[0].pk]
    assert env.read("HOT", grant["key"]) == b"race"
