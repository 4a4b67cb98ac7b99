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
START, FINALIZE, PARTS = "/s3strata/uploads/", "/s3strata/uploads/finalize/", "/s3strata/uploads/parts/"
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
    policy = Clip._meta.get_field("video").upload_policy()
    _, grant = call(client, START, filename="c.mp4", size=4, policy=policy.sign())
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=b"clip", ContentType="video/mp4")
    _, done = call(client, FINALIZE, ticket=grant["ticket"])
    form = clip_form()(data={"title": "t", "video__s3strata_ref": done["ref"]})
    assert form.is_valid(), form.errors
    clip = form.save()
    assert clip.video_id == done["id"] and env.read("HOT", clip.video.path) == b"clip"
    ref = make_ref(clip.video, owner=f"user:{User.objects.get(username='uploader').pk}", policy=policy)
    again = clip_form()(data={"title": "u", "video__s3strata_ref": ref})
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
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=b"race", ContentType="text/plain")
    sync = get_file_manager().sync
    original = sync.adopt_object
    rival: list[PhysicalFile] = []

    def another_finalize_wins_first(*args: Any, **kwargs: Any) -> PhysicalFile | None:
        if not rival:
            rival.append(original(*args, **kwargs))  # the other request's row, committed just before ours
        return original(*args, **kwargs)

    monkeypatch.setattr(sync, "adopt_object", another_finalize_wins_first)
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200 and done["id"] == rival[0].pk, done
    assert list(PhysicalFile.objects.values_list("pk", flat=True)) == [rival[0].pk]
    assert env.read("HOT", grant["key"]) == b"race"


# -- hostile input (docs/reliability.md "Hostile uploads") ---------------------------------------------


def s3_writes(env: Env) -> list[str]:
    return env.keys("HOT") + env.keys("COLD")


@pytest.mark.seaweed
def test_active_content_is_stored_as_an_attachment_and_s3_enforces_it(seaweed_settings: Env) -> None:
    """A PUBLIC text/html upload that a policy admits by name is pinned to Content-Disposition: attachment."""
    env, client = seaweed_settings, uploader()
    body = b"<script>alert(document.domain)</script>"
    policy = UploadPolicy(visibility="PUBLIC", content_types=("text/html",)).sign()
    status, grant = call(client, START, filename="page.html", size=len(body), content_type="text/html", policy=policy)
    assert status == 200 and grant["fields"]["Content-Disposition"].startswith("attachment;")
    without = {k: v for k, v in grant["fields"].items() if k != "Content-Disposition"}
    assert post_to_s3(grant, body, without).status_code == 403  # the policy requires the disposition
    inline = {**grant["fields"], "Content-Disposition": "inline"}
    assert post_to_s3(grant, body, inline).status_code == 403
    assert s3_writes(env) == []
    assert post_to_s3(grant, body).status_code in (200, 201, 204)
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    head = env.client("HOT").head_object(Bucket=env.hot_bucket, Key=grant["key"])
    assert head["ContentType"] == "text/html; charset=utf-8" and head["ContentDisposition"].startswith("attachment;")


@pytest.mark.seaweed
def test_active_content_in_parts_is_an_attachment_too(seaweed_settings: Env) -> None:
    env, client = seaweed_settings, uploader()
    body = b"<svg xmlns='http://www.w3.org/2000/svg'/>" + b" " * (7 * MiB)
    policy = UploadPolicy(content_types=("image/svg+xml",)).sign()
    status, grant = call(client, START, filename="logo.svg", size=len(body), policy=policy)
    assert status == 200 and grant["method"] == "multipart"
    assert put_parts(grant, body) == [200, 200]
    assert call(client, FINALIZE, ticket=grant["ticket"])[0] == 200
    head = env.client("HOT").head_object(Bucket=env.hot_bucket, Key=grant["key"])
    assert head["ContentType"] == "image/svg+xml" and head["ContentDisposition"].startswith("attachment;")


@one_endpoint
@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("page.html", "text/html"),
        ("page.html", "application/pdf"),  # the name decides: still HTML
        ("logo.svg", "image/svg+xml"),
        ("feed.xml", "application/xml"),
        ("x.xhtml", None),
        ("app.js", "text/javascript"),
    ],
)
def test_active_content_is_refused_by_the_default_allow_list(
    s3strata_settings: Env, filename: str, content_type: str | None
) -> None:
    status, answer = call(uploader(), START, filename=filename, size=10, content_type=content_type)
    assert status == 400 and "not accepted here" in answer["error"], answer
    assert s3_writes(s3strata_settings) == []


@one_endpoint
def test_the_name_decides_the_stored_type(s3strata_settings: Env) -> None:
    client = uploader()
    status, grant = call(client, START, filename="report.pdf", size=3, content_type="text/html")
    assert status == 200 and grant["content_type"] == "application/pdf"
    assert grant["fields"]["Content-Type"] == "application/pdf" and "Content-Disposition" not in grant["fields"]
    status, grant = call(client, START, filename="notes", size=3, content_type="text/plain")
    assert status == 200 and grant["content_type"] == "text/plain"  # no extension: a plain claim stands
    status, grant = call(client, START, filename="notes", size=3, content_type="text/html")
    assert status == 200 and grant["content_type"] == "application/octet-stream"  # an active one does not


@one_endpoint
def test_active_content_refused_when_configured(s3strata_settings: Env, settings: Any) -> None:
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ACTIVE_CONTENT": "refuse"}}
    policy = UploadPolicy(content_types=("text/html",)).sign()
    status, answer = call(uploader(), START, filename="page.html", size=3, policy=policy)
    assert status == 400 and "refused" in answer["error"]
    assert s3_writes(s3strata_settings) == []


@one_endpoint
def test_uploads_through_django_store_the_named_type_and_attachments(s3strata_settings: Env, settings: Any) -> None:
    """Without direct uploads: the browser's Content-Type is a claim; active content is an attachment."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from django_s3strata.core import InvalidOptionError
    from django_s3strata.services import store_upload

    env = s3strata_settings
    pdf = store_upload(SimpleUploadedFile("report.pdf", b"%PDF", content_type="text/html"), "report.pdf", "a/report.pdf")
    head = env.client("HOT").head_object(Bucket=env.hot_bucket, Key=pdf.path)
    assert (pdf.content_type, head["ContentType"]) == ("application/pdf", "application/pdf")
    assert "ContentDisposition" not in head
    page = store_upload(SimpleUploadedFile("page.html", b"<p>", content_type="text/html"), "page.html", "b/page.html")
    head = env.client("HOT").head_object(Bucket=env.hot_bucket, Key=page.path)
    assert head["ContentType"] == "text/html; charset=utf-8" and head["ContentDisposition"].startswith("attachment;")
    odd = store_upload(SimpleUploadedFile("blob", b"x", content_type="text/html; charset=x,image/png"), "blob", "c/blob")
    assert odd.content_type == "application/octet-stream"
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ACTIVE_CONTENT": "refuse"}}
    with pytest.raises(InvalidOptionError, match="refused"):
        store_upload(SimpleUploadedFile("page.html", b"<p>", content_type="text/html"), "page.html", "d/page.html")
    assert not any(k.endswith("d/page.html") for k in env.keys("HOT"))


@one_endpoint
@pytest.mark.parametrize(
    ("filename", "content_type", "message"),
    [
        ("logo.svg", "image/svg+xml", "not accepted here"),
        ("a.png", "image/", "is invalid"),
        ("a.png", "image/x,text/html", "is invalid"),
        ("a.png", "image/png; charset=utf-8", "is invalid"),
        ("a.png", "image/*", "is invalid"),
        ("a.png", ["image/png"], "is invalid"),
    ],
)
def test_image_patterns_admit_strictly_parsed_passive_images_only(
    s3strata_settings: Env, filename: str, content_type: Any, message: str
) -> None:
    policy = UploadPolicy(content_types=("image/*",)).sign()
    status, answer = call(uploader(), START, filename=filename, size=3, content_type=content_type, policy=policy)
    assert status == 400 and message in answer["error"], answer
    assert s3_writes(s3strata_settings) == []


@one_endpoint
def test_an_image_pattern_pins_the_exact_type(s3strata_settings: Env) -> None:
    import base64

    policy = UploadPolicy(content_types=("image/*",)).sign()
    status, grant = call(uploader(), START, filename="a.png", size=3, content_type="IMAGE/PNG", policy=policy)
    assert status == 200
    conditions = json.loads(base64.b64decode(grant["fields"]["policy"]))["conditions"]
    assert {"Content-Type": "image/png"} in conditions


def test_bad_patterns_are_refused_where_they_are_written(settings: Any) -> None:
    from django_s3strata import conf
    from django_s3strata.core import ConfigurationError, InvalidOptionError

    with pytest.raises(InvalidOptionError, match="pattern"):
        UploadPolicy(content_types=("image/",))
    with pytest.raises(InvalidOptionError, match="pattern"):
        UploadPolicy(content_types=("image/x,text/html",))
    with pytest.raises(ConfigurationError, match="DIRECT_UPLOAD_CONTENT_TYPES"):
        conf.parse({"DIRECT_UPLOAD_CONTENT_TYPES": ["image/*", "*/html;"]})
    with pytest.raises(ConfigurationError, match="DIRECT_UPLOAD_CONTENT_TYPES"):
        conf.parse({"DIRECT_UPLOAD_CONTENT_TYPES": "image/*"})


def strict_form() -> Any:
    from django import forms

    from django_s3strata.forms import DirectUploadField, DirectUploadWidget

    class AvatarForm(forms.Form):
        avatar = DirectUploadField(widget=DirectUploadWidget(UploadPolicy(content_types=("image/*",), max_size=100)))

    return AvatarForm


@one_endpoint
def test_a_ref_is_accepted_only_under_its_fields_policy(s3strata_settings: Env) -> None:
    from django_s3strata.uploads import requester

    env, client = s3strata_settings, uploader()
    body = b"<html>" + b"x" * 5000
    _, grant = call(client, START, filename="page.txt", size=len(body))  # the default policy
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=body, ContentType="text/plain")
    _, done = call(client, FINALIZE, ticket=grant["ticket"])
    request = type("Request", (), {"user": User.objects.get(username="uploader")})()
    with requester(request):
        form = strict_form()(data={"avatar__s3strata_ref": done["ref"]})
        assert not form.is_valid() and "another field" in str(form.errors["avatar"])

    png = b"\x89PNG\r\n\x1a\n"
    strict = UploadPolicy(content_types=("image/*",), max_size=100)
    _, grant = call(client, START, filename="me.png", size=len(png), policy=strict.sign())
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=png, ContentType="image/png")
    _, done = call(client, FINALIZE, ticket=grant["ticket"])
    with requester(request):
        form = strict_form()(data={"avatar__s3strata_ref": done["ref"]})
        assert form.is_valid(), form.errors
        assert form.cleaned_data["avatar"].pk == done["id"]


@one_endpoint
def test_a_ref_is_accepted_only_from_its_uploader(s3strata_settings: Env) -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from django_s3strata.middleware import DirectUploadMiddleware

    env, alice = s3strata_settings, uploader("alice")
    uploader("mallory")
    png = b"\x89PNG\r\n\x1a\n"
    _, grant = call(
        alice, START, filename="me.png", size=len(png), policy=UploadPolicy(content_types=("image/*",), max_size=100).sign()
    )
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=png, ContentType="image/png")
    _, done = call(alice, FINALIZE, ticket=grant["ticket"])
    outcomes: list[Any] = []

    def view(request: Any) -> HttpResponse:
        form = strict_form()(data={"avatar__s3strata_ref": done["ref"]})
        outcomes.append(form.is_valid() or str(form.errors["avatar"]))
        return HttpResponse()

    for name in ("mallory", "alice"):
        request = RequestFactory().post("/")
        request.user = User.objects.get(username=name)
        DirectUploadMiddleware(view)(request)
    assert "someone else" in outcomes[0] and outcomes[1] is True


@one_endpoint
@pytest.mark.parametrize(
    ("name", "body", "content_type", "message"),
    [
        ("page.html", b"<script>", "image/png", "not accepted here"),
        ("big.png", b"x" * 200, "image/png", "File too large"),
        ("a${filename}.png", b"x", "image/png", "rename the file"),
    ],
)
def test_the_plain_upload_fallback_is_held_to_the_same_policy(
    s3strata_settings: Env, name: str, body: bytes, content_type: str, message: str
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = strict_form()(data={}, files={"avatar": SimpleUploadedFile(name, body, content_type=content_type)})
    assert not form.is_valid() and message in str(form.errors["avatar"]), form.errors
    ok = strict_form()(data={}, files={"avatar": SimpleUploadedFile("me.png", b"png", content_type="text/html")})
    assert ok.is_valid(), ok.errors


@one_endpoint
def test_a_filename_cannot_unpin_the_key(s3strata_settings: Env) -> None:
    status, answer = call(uploader(), START, filename="${filename}", size=3)
    assert status == 400 and "rename the file" in answer["error"]
    status, answer = call(uploader("u2"), START, filename="x-${filename}.txt", size=3)
    assert status == 400 and s3_writes(s3strata_settings) == []


@pytest.mark.seaweed
def test_s3_refuses_any_other_key_even_for_a_filename_variable(seaweed_settings: Env) -> None:
    from django_s3strata.core import direct

    env, store = seaweed_settings, get_file_manager().objectstore
    key = "private/x-${filename}"
    post = direct.presigned_post(store, StorageTier.HOT, key, size=4, content_type="text/plain", expires_in=60)
    grant = {"url": post.url, "fields": post.fields}
    assert post_to_s3(grant, b"evil", {**post.fields, "key": "private/chosen.txt"}).status_code == 403
    assert post_to_s3(grant, b"evil", {**post.fields, "key": "private/x-evil.html"}).status_code == 403
    # S3 fills "${filename}" from the sent file's name ("upload.bin"): not the pinned key either.
    post_to_s3(grant, b"evil")
    assert all(k == key for k in env.keys("HOT"))


@one_endpoint
def test_sizes_have_a_finite_default_bound(s3strata_settings: Env) -> None:
    status, answer = call(uploader(), START, filename="huge.bin", size=10**15)
    assert status == 413 and "5368709120" in answer["error"]
    assert list(iter_pending_uploads(get_file_manager().objectstore, StorageTier.HOT)) == []


@one_endpoint
def test_a_huge_grant_signs_one_batch_and_more_on_demand(s3strata_settings: Env, settings: Any) -> None:
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_MAX_SIZE": None}
    alice, mallory = uploader("alice"), uploader("mallory")
    assert call(alice, START, filename="huge.bin", size=5 * 1024**4 + 1)[0] == 413  # over S3's 5 TiB
    response = alice.post(START, data=json.dumps({"filename": "huge.bin", "size": 5 * 1024**4}), content_type="application/json")
    grant = response.json()
    assert response.status_code == 200 and len(response.content) < 100_000
    assert grant["part_count"] == 10_000 and len(grant["parts"]) == 100
    assert 5 * MiB <= grant["part_size"] <= 5 * 1024**3
    status, more = call(alice, PARTS, ticket=grant["ticket"], first=101, last=200)
    assert status == 200 and [p["number"] for p in more["parts"]] == list(range(101, 201))
    assert call(alice, PARTS, ticket=grant["ticket"], first=1, last=101)[0] == 400  # one batch at most
    assert call(alice, PARTS, ticket=grant["ticket"], first=9_999, last=10_001)[0] == 400
    assert call(alice, PARTS, ticket=grant["ticket"], first="1", last=[2])[0] == 400
    assert call(mallory, PARTS, ticket=grant["ticket"], first=1, last=2)[0] == 403
    _, small = call(alice, START, filename="small.txt", size=3)
    assert call(alice, PARTS, ticket=small["ticket"], first=1, last=1)[0] == 400
    for upload in iter_pending_uploads(get_file_manager().objectstore, StorageTier.HOT):
        get_file_manager().objectstore.client(StorageTier.HOT).abort_multipart_upload(
            Bucket=s3strata_settings.hot_bucket, Key=upload.key, UploadId=upload.upload_id
        )


def test_part_settings_stay_within_s3_limits() -> None:
    from django_s3strata import conf
    from django_s3strata.core import ConfigurationError

    for bad in ({"DIRECT_UPLOAD_PART_SIZE": 100 * 1024**3}, {"DIRECT_UPLOAD_PART_SIZE": MiB}, {"DIRECT_UPLOAD_MAX_SIZE": 10**15}):
        with pytest.raises(ConfigurationError):
            conf.parse(bad)
    with pytest.raises(ConfigurationError, match="RATE_LIMIT"):
        conf.parse({"DIRECT_UPLOAD_RATE_LIMIT": 5})


@one_endpoint
def test_starts_are_rate_limited_per_user(s3strata_settings: Env, settings: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_RATE_LIMIT": (2, 60)}
    alice, bob = uploader("alice"), uploader("bob")
    assert [call(alice, START, filename="a.txt", size=3)[0] for _ in range(2)] == [200, 200]
    response = alice.post(START, data=json.dumps({"filename": "a.txt", "size": 3}), content_type="application/json")
    assert response.status_code == 429 and "Too many uploads" in response.json()["error"]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert call(bob, START, filename="a.txt", size=3)[0] == 200


@pytest.mark.seaweed  # moto reports every upload as started in 2010
@pytest.mark.parametrize("mode", ["report", "adopt", "delete"])
def test_abandoned_multipart_uploads_are_aborted_in_every_mode(
    seaweed_settings: Env, settings: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import time

    from django_s3strata import upload_tickets

    env = seaweed_settings
    store = get_file_manager().objectstore
    env.client("HOT").create_multipart_upload(Bucket=env.hot_bucket, Key="private/abandoned.bin")
    # A fresh upload may still be finalized: no mode aborts it (the grace period keeps it in delete mode).
    assert operations.sweep_orphans(mode).aborted_uploads == 0
    assert len(list(iter_pending_uploads(store, StorageTier.HOT))) == 1
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_EXPIRES": 1}
    monkeypatch.setattr(upload_tickets, "TICKET_GRACE", 0)
    monkeypatch.setattr(upload_tickets, "ABANDON_MARGIN", 1)
    time.sleep(2.5)
    assert operations.sweep_orphans(mode, dry_run=True).aborted_uploads == 0
    summary = operations.sweep_orphans(mode)
    assert (summary.unfinished_uploads, summary.aborted_uploads) == (1, 1)
    assert list(iter_pending_uploads(store, StorageTier.HOT)) == []


@one_endpoint
def test_an_anonymous_ticket_does_not_carry_the_session_key(
    s3strata_settings: Env, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from django.core import signing

    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_AUTHORIZE": "tests.test_direct_uploads.anyone"}
    env, client = s3strata_settings, Client()
    with caplog.at_level(logging.INFO, logger="django_s3strata"):
        status, grant = call(client, START, filename="a.txt", size=4)
    assert status == 200
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    ticket = signing.loads(grant["ticket"], salt="django_s3strata.uploads.ticket")
    assert session_key not in json.dumps(ticket) and session_key not in caplog.text
    assert ticket["user"].startswith("session:")
    env.client("HOT").put_object(Bucket=env.hot_bucket, Key=grant["key"], Body=b"anon", ContentType="text/plain")
    assert call(Client(), FINALIZE, ticket=grant["ticket"])[0] == 403  # another session
    assert call(client, FINALIZE, ticket=grant["ticket"])[0] == 200


def anyone(request: Any, policy: UploadPolicy) -> bool:
    return True


# -- presigned PUT, for providers without POST Object (DIRECT_UPLOAD_METHOD = "put") -------------------


@pytest.mark.seaweed
def test_put_upload_lands_and_s3_enforces_length_and_type(seaweed_settings: Env, settings: Any) -> None:
    env, client = seaweed_settings, uploader()
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": "put"}
    body = b"%PDF-1.7 a report, sent with PUT"
    status, grant = call(client, START, filename="report.pdf", size=len(body), content_type="application/pdf")
    assert status == 200 and grant["method"] == "put" and "fields" not in grant
    assert grant["headers"] == {"Content-Type": "application/pdf"}
    signed = grant["url"].split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert signed == "content-length%3Bcontent-type%3Bhost"

    def put(data: bytes, headers: dict[str, str]) -> int:
        return requests.put(grant["url"], data=data, headers=headers, timeout=30).status_code

    # SeaweedFS checks the signature: another length, another type or no type is refused by S3 itself.
    assert put(body + b"!", grant["headers"]) == 403
    assert put(body[:-1], grant["headers"]) == 403
    assert put(body, {"Content-Type": "text/html"}) == 403
    assert put(body, {}) == 403
    assert env.keys("HOT") == []
    assert put(body, grant["headers"]) == 200
    status, done = call(client, FINALIZE, ticket=grant["ticket"])
    assert status == 200, done
    record = PhysicalFile.objects.get(pk=done["id"])
    assert (record.path, record.size, record.content_type) == (grant["key"], len(body), "application/pdf")
    assert env.read("HOT", record.path) == body and requests.get(record.url, timeout=10).content == body
    status, answer = call(client, PARTS, ticket=grant["ticket"], first=1, last=1)
    assert status == 400 and "single POST or PUT" in answer["error"]


@pytest.mark.seaweed
def test_put_upload_of_active_content_signs_its_disposition(seaweed_settings: Env, settings: Any) -> None:
    env, client = seaweed_settings, uploader()
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": "put"}
    body = b"<script>alert(document.domain)</script>"
    policy = UploadPolicy(visibility="PUBLIC", content_types=("text/html",)).sign()
    status, grant = call(client, START, filename="page.html", size=len(body), content_type="text/html", policy=policy)
    assert status == 200 and grant["headers"]["Content-Disposition"].startswith("attachment;")
    without = {k: v for k, v in grant["headers"].items() if k != "Content-Disposition"}
    assert requests.put(grant["url"], data=body, headers=without, timeout=30).status_code == 403
    inline = {**grant["headers"], "Content-Disposition": "inline"}
    assert requests.put(grant["url"], data=body, headers=inline, timeout=30).status_code == 403
    assert requests.put(grant["url"], data=body, headers=grant["headers"], timeout=30).status_code == 200
    assert call(client, FINALIZE, ticket=grant["ticket"])[0] == 200
    head = env.hot_client.head_object(Bucket=env.hot_bucket, Key=grant["key"])
    assert head["ContentDisposition"] == grant["headers"]["Content-Disposition"]


@pytest.mark.seaweed
def test_large_files_still_go_in_parts_with_put(seaweed_settings: Env, settings: Any) -> None:
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_METHOD": "put"}
    status, grant = call(uploader(), START, filename="big.bin", size=7 * MiB)
    assert status == 200 and grant["method"] == "multipart"
