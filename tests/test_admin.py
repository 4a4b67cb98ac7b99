"""The PhysicalFile admin through Django's test client: columns, actions, permissions, the orphans page."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from django_s3strata import get_file_manager
from django_s3strata.core import StorageTier, UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/s3strata/physicalfile/"


def action(client: Client, name: str, files: list[PhysicalFile], **extra: Any) -> Any:
    data = {"action": name, "_selected_action": [str(f.pk) for f in files], **extra}
    return client.post(CHANGELIST, data, follow=True)


def texts(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_changelist_is_constant_in_queries_and_makes_no_s3_request(
    s3strata_settings: Env, admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    sync = get_file_manager().sync
    for i in range(100):
        sync.upload(b"x", UploadOptions(filename=f"f{i}.txt", visibility="PUBLIC" if i % 2 else "PRIVATE"))
    sent: list[str] = []
    store = get_file_manager().objectstore
    for tier in StorageTier:
        store.client(tier).meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.method))
    with django_assert_max_num_queries(12):
        page = admin_client.get(CHANGELIST)
    html = page.content.decode()
    assert page.status_code == 200 and "f99.txt" in html
    # The open links are the download view's (they survive moves): no presigning for the page.
    assert html.count("/s3strata/files/") == 100 and "X-Amz-Signature" not in html
    assert sent == []
    assert admin_client.get(CHANGELIST + "?visibility=public").context["cl"].result_count == 50
    assert admin_client.get(CHANGELIST + "?q=f42.txt").context["cl"].result_count == 1


def test_actions_move_files_and_report(s3strata_settings: Env, admin_client: Client) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    a, b = sync.upload(b"a", UploadOptions(filename="a.txt")), sync.upload(b"b", UploadOptions(filename="b.txt"))
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=b.path)  # b will fail
    response = action(admin_client, "move_to_cold", [a, b])
    messages = texts(response)
    assert "1 file moved to COLD." in messages
    assert any(m.startswith(f"File {b.pk} (b.txt) failed:") and "no such object" in m for m in messages)
    assert env.keys("COLD") == [a.path]
    response = action(admin_client, "make_public", [PhysicalFile.objects.get(pk=a.pk)])
    assert "1 file made public." in texts(response)
    assert PhysicalFile.objects.get(pk=a.pk).path.startswith("public/")


def test_set_hot_duration_asks_first(s3strata_settings: Env, admin_client: Client) -> None:
    f = get_file_manager().sync.upload(b"h", UploadOptions(hot_duration=60))
    page = action(admin_client, "set_hot_duration", [f])
    assert b"Hot duration (seconds)" in page.content and PhysicalFile.objects.get().hot_until == f.hot_until
    done = action(admin_client, "set_hot_duration", [f], apply="1", duration="")
    assert "1 file got a new hot duration." in texts(done) and PhysicalFile.objects.get().hot_until is None
    action(admin_client, "set_hot_duration", [f], apply="1", duration="7200")
    assert PhysicalFile.objects.get().hot_until > f.hot_until + datetime.timedelta(seconds=7000)


def test_delete_with_objects_confirms_then_deletes(s3strata_settings: Env, admin_client: Client) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"d", UploadOptions(filename="doomed.txt"))
    page = action(admin_client, "delete_with_objects", [f])
    assert b"doomed.txt" in page.content and env.keys("HOT") == [f.path]
    done = action(admin_client, "delete_with_objects", [f], apply="1")
    assert "1 file deleted with its object." in texts(done)
    assert env.keys("HOT") == [] and not PhysicalFile.objects.exists()
    assert "delete_selected" not in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices.__str__()


def test_large_selections_are_queued(s3strata_settings: Env, admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_s3strata import tasks

    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.apply_file_action, "apply_async", lambda args, kwargs: sent.append((args, kwargs)))
    files = [PhysicalFile.objects.create(filename=f"{i}", path=f"private/{i}") for i in range(51)]
    response = action(admin_client, "move_to_cold", files)
    assert "51 files are queued: moved to COLD runs in the background." in texts(response)
    [(args, kwargs)] = sent
    assert sorted(args[0]) == sorted(f.pk for f in files) and args[1] == "to_cold" and kwargs == {}


def test_actions_need_their_permissions(s3strata_settings: Env, client: Client) -> None:
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_physicalfile", "change_physicalfile"]))
    client.force_login(user)
    f = get_file_manager().sync.upload(b"x")
    form = client.get(CHANGELIST).context["action_form"]
    assert form is None  # no action is offered without its permission

    refused = action(client, "move_to_cold", [f])
    assert PhysicalFile.objects.get().storage_tier == "HOT" and refused.status_code == 200
    assert client.get(CHANGELIST + "orphans/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="change_tier_physicalfile"))
    user = User.objects.get(pk=user.pk)
    client.force_login(user)
    assert "1 file moved to COLD." in texts(action(client, "move_to_cold", [f]))


def test_orphans_page_lists_adopts_and_deletes(s3strata_settings: Env, admin_client: Client, settings: Any) -> None:
    env = s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    env.put("HOT", "public/one.png", b"1")
    env.put("HOT", "private/two.bin", b"22")
    assert b"orphans-app-link" in admin_client.get("/admin/s3strata/").content
    assert b"orphans-link" in admin_client.get(CHANGELIST).content
    page = admin_client.get(CHANGELIST + "orphans/?tier=HOT")
    assert sorted(o.key for o in page.context["orphans"]) == ["private/two.bin", "public/one.png"]
    assert [o.key for o in admin_client.get(CHANGELIST + "orphans/?tier=HOT&prefix=public/").context["orphans"]] == [
        "public/one.png"
    ]
    confirm = admin_client.post(CHANGELIST + "orphans/", {"tier": "HOT", "orphan_action": "adopt", "key": ["public/one.png"]})
    assert b"Create rows for these objects?" in confirm.content and not PhysicalFile.objects.exists()
    done = admin_client.post(
        CHANGELIST + "orphans/", {"tier": "HOT", "orphan_action": "adopt", "key": ["public/one.png"], "confirm": "1"}, follow=True
    )
    assert "1 orphan adopted." in texts(done)
    assert PhysicalFile.objects.get().path == "public/one.png" and PhysicalFile.objects.get().size == 1
    admin_client.post(
        CHANGELIST + "orphans/", {"tier": "HOT", "orphan_action": "delete", "key": ["private/two.bin"], "confirm": "1"}
    )
    assert env.keys("HOT") == ["public/one.png"]


def test_orphans_page_respects_the_grace_period(s3strata_settings: Env, admin_client: Client) -> None:
    env = s3strata_settings
    env.put("HOT", "private/fresh.bin", b"f")
    assert admin_client.get(CHANGELIST + "orphans/").context["orphans"] == []
    response = admin_client.post(
        CHANGELIST + "orphans/",
        {"tier": "HOT", "orphan_action": "delete", "key": ["private/fresh.bin"], "confirm": "1"},
        follow=True,
    )
    assert any("no longer an orphan old enough" in m for m in texts(response))
    assert env.keys("HOT") == ["private/fresh.bin"]


def test_orphans_page_skips_a_key_a_row_now_points_at(s3strata_settings: Env, admin_client: Client, settings: Any) -> None:
    env = s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    env.put("HOT", "private/taken.bin", b"t")
    PhysicalFile.objects.create(filename="taken.bin", path="private/taken.bin")  # between the list and the click
    for orphan_action in ("delete", "adopt"):
        data = {"tier": "HOT", "orphan_action": orphan_action, "key": ["private/taken.bin"], "confirm": "1"}
        response = admin_client.post(CHANGELIST + "orphans/", data, follow=True)
        assert f"private/taken.bin is no longer an orphan old enough to {orphan_action}." in texts(response)
    assert env.keys("HOT") == ["private/taken.bin"] and PhysicalFile.objects.count() == 1


def test_add_form_uploads_and_change_form_previews(s3strata_settings: Env, admin_client: Client) -> None:
    env = s3strata_settings
    upload = SimpleUploadedFile("pic.png", b"\x89PNG....", "image/png")
    response = admin_client.post(
        CHANGELIST + "add/", {"upload": upload, "tier": "COLD", "visibility": "PUBLIC", "hot_duration": ""}, follow=True
    )
    assert response.status_code == 200
    record = PhysicalFile.objects.get()
    assert (record.storage_tier, record.filename, record.size, record.content_type) == ("COLD", "pic.png", 8, "image/png")
    assert env.read("COLD", record.path) == b"\x89PNG...."
    change = admin_client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    assert f'<img src="{record.url}"' in change


# -- hostile input -----------------------------------------------------------------------------

ORPHANS = CHANGELIST + "orphans/"
shared_only = pytest.mark.parametrize("env", ["shared"], indirect=True)  # the layout plays no part in these


@shared_only
@pytest.mark.parametrize("orphan_action", ["delete", "adopt"])
@pytest.mark.parametrize(
    "key",
    [
        "backups/db.sql.gz",  # another application's object in the same bucket
        "other-app/config.json",
        "public/../backups/db.sql.gz",  # under a prefix by its text, outside it once a server resolves ".."
        "private//x",
        "private/a\nb",
        "public",
        "public/",
        "publicity/x",
        "/public/x",
        "private/" + "x" * 1100,  # longer than any S3 key
    ],
)
def test_orphans_page_refuses_keys_outside_the_prefixes(
    s3strata_settings: Env, admin_client: Client, settings: Any, key: str, orphan_action: str
) -> None:
    env = s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    if len(key) < 1024 and "\n" not in key and not key.startswith("/"):
        env.put("HOT", key, b"not ours")
    before = env.keys("HOT")
    listed = admin_client.get(ORPHANS + "?tier=HOT").context["orphans"]
    assert key not in [o.key for o in listed]
    for extra in ({}, {"confirm": "1"}):  # neither the confirmation page nor the action takes it
        response = admin_client.post(ORPHANS, {"tier": "HOT", "orphan_action": orphan_action, "key": [key], **extra}, follow=True)
        assert response.status_code == 200
        assert any("is refused: only keys under the HOT tier's prefixes public/, private/" in m for m in texts(response))
        assert b"Create rows for these objects?" not in response.content
    assert env.keys("HOT") == before and not PhysicalFile.objects.exists()


@shared_only
def test_orphans_page_acts_on_good_keys_and_refuses_the_others(
    s3strata_settings: Env, admin_client: Client, settings: Any
) -> None:
    env = s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    env.put("HOT", "private/stray.bin", b"s")
    env.put("HOT", "backups/db.sql.gz", b"db")
    data = {"tier": "HOT", "orphan_action": "delete", "key": ["private/stray.bin", "backups/db.sql.gz"]}
    confirm = admin_client.post(ORPHANS, data)
    assert [str(k) for k in confirm.context["keys"]] == ["private/stray.bin"]
    done = admin_client.post(ORPHANS, {**data, "confirm": "1"}, follow=True)
    assert "1 orphan deleted." in texts(done) and env.keys("HOT") == ["backups/db.sql.gz"]
    too_many = admin_client.post(ORPHANS, {**data, "key": [f"private/{i}" for i in range(51)], "confirm": "1"}, follow=True)
    assert "Select at most 50 orphans at a time." in texts(too_many)


@shared_only
@pytest.mark.parametrize(
    ("query", "tier", "page"),
    [("?tier=LUKEWARM", "HOT", 1), ("?page=abc", "HOT", 1), ("?tier=COLD&page=-4", "COLD", 1), ("?page=" + "9" * 5000, "HOT", 1)],
)
def test_orphans_page_falls_back_on_a_bad_tier_or_page(
    s3strata_settings: Env, admin_client: Client, query: str, tier: str, page: int
) -> None:
    response = admin_client.get(ORPHANS + query)
    assert response.status_code == 200 and (response.context["tier"], response.context["page"]) == (tier, page)


@shared_only
@pytest.mark.parametrize("tier", ["LUKEWARM", "", "HOT\x00"])
def test_orphans_action_with_a_bad_tier_is_a_bad_request(s3strata_settings: Env, admin_client: Client, tier: str) -> None:
    response = admin_client.post(ORPHANS, {"tier": tier, "orphan_action": "delete", "key": ["private/x"], "confirm": "1"})
    assert response.status_code == 400 and b"Invalid tier" in response.content


@shared_only
def test_changelist_renders_rows_outside_the_prefixes(s3strata_settings: Env, admin_client: Client) -> None:
    ours = get_file_manager().sync.upload(b"x", UploadOptions(filename="ours.png"))
    theirs = PhysicalFile.objects.create(filename="config.png", path="other-app/config.png", content_type="image/png")
    odd = PhysicalFile.objects.create(filename="odd.txt", path="private/odd.txt", storage_tier="WARM")
    page = admin_client.get(CHANGELIST)
    html = page.content.decode()
    assert page.status_code == 200 and "config.png" in html and "odd.txt" in html
    assert html.count('rel="noopener"') == 1 and html.count('class="s3strata-no-link"') == 2
    assert "under neither of the HOT tier&#x27;s prefixes" in html  # the reason, as the dash's title
    for record in (theirs, odd):
        change = admin_client.get(f"{CHANGELIST}{record.pk}/change/")
        assert change.status_code == 200 and b"s3strata-no-link" in change.content and b"<img" not in change.content
    assert b"<img" in admin_client.get(f"{CHANGELIST}{ours.pk}/change/").content


HUGE = "99999999999999999999"


@shared_only
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (HUGE, "Enter at most 3153600000 seconds (100 years)."),
        ("3153600001", "Enter at most 3153600000 seconds (100 years)."),
        ("-1", "Enter 0 or more seconds."),
        ("1e400", "Enter a whole number of seconds"),
        ("9" * 5000, "Enter a whole number of seconds"),
    ],
)
def test_add_form_refuses_a_bad_hot_duration_before_any_upload(
    s3strata_settings: Env, admin_client: Client, value: str, error: str
) -> None:
    env = s3strata_settings
    upload = SimpleUploadedFile("big.bin", b"payload", "application/octet-stream")
    response = admin_client.post(
        CHANGELIST + "add/", {"upload": upload, "tier": "HOT", "visibility": "PRIVATE", "hot_duration": value}
    )
    assert response.status_code == 200
    assert any(error in e for e in response.context["adminform"].form.errors["hot_duration"])
    assert env.keys("HOT") == [] and not PhysicalFile.objects.exists()  # nothing stored, no orphan


@shared_only
def test_add_form_accepts_the_longest_hot_duration(s3strata_settings: Env, admin_client: Client) -> None:
    upload = SimpleUploadedFile("long.bin", b"payload", "application/octet-stream")
    data = {"upload": upload, "tier": "HOT", "visibility": "PRIVATE", "hot_duration": "3153600000"}
    assert admin_client.post(CHANGELIST + "add/", data).status_code == 302
    assert PhysicalFile.objects.get().hot_until.year >= datetime.date.today().year + 99


@shared_only
@pytest.mark.parametrize("value", [HUGE, "-5", "abc"])
def test_set_hot_duration_shows_a_form_error(s3strata_settings: Env, admin_client: Client, value: str) -> None:
    f = get_file_manager().sync.upload(b"h", UploadOptions(hot_duration=60))
    page = action(admin_client, "set_hot_duration", [f], apply="1", duration=value)
    assert page.status_code == 200 and page.context["form"].errors["duration"]
    assert b"errorlist" in page.content and not texts(page)  # no "failed: <Python message>"
    assert PhysicalFile.objects.get().hot_until == f.hot_until


# -- the first hour: what the admin says, and what it offers -----------------------------------


def reported(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_physical_file_field_offers_no_related_popup(s3strata_settings: Env, admin_client: Client) -> None:
    """The "+" next to a file input opened a popup whose file could not be put into the input: the
    owner was saved with no file and the popup's row was left with no owner. No related links now."""
    from tests.testapp.models import Document

    for url in ("/admin/testapp/document/add/", "/admin/testapp/clip/add/", "/admin/testapp/contract/add/"):
        html = admin_client.get(url).content.decode()
        assert 'type="file"' in html and "related-widget-wrapper-link" not in html, url
        assert "add_id_" not in html and "Add another physical file" not in html, url
    upload = SimpleUploadedFile("minutes.txt", b"minutes", "text/plain")
    response = admin_client.post("/admin/testapp/document/add/", {"title": "Minutes", "attachment": upload})
    assert response.status_code == 302
    document = Document.objects.get()
    assert document.attachment is not None and PhysicalFile.objects.get().pk == document.attachment.pk
    change = admin_client.get(f"/admin/testapp/document/{document.pk}/change/").content.decode()
    assert "minutes.txt" in change and "related-widget-wrapper-link" not in change


def test_move_actions_say_what_was_already_there(s3strata_settings: Env, admin_client: Client) -> None:
    sync = get_file_manager().sync
    cold = sync.upload(b"c", UploadOptions(filename="cold.txt", tier="COLD"))
    hot = sync.upload(b"h", UploadOptions(filename="hot.txt", hot_duration=3600))
    moved = reported(action(admin_client, "move_to_cold", [cold, hot]))
    assert moved == [("success", "1 file moved to COLD."), ("warning", "1 file was already in COLD.")]
    assert reported(action(admin_client, "move_to_cold", [cold, hot])) == [("warning", "2 files were already in COLD.")]
    assert reported(action(admin_client, "archive_now", [cold])) == [("warning", "1 file was already in COLD.")]
    back = reported(action(admin_client, "move_to_hot", [cold]))
    assert back == [("success", "1 file moved to HOT, with no hot duration (it stays HOT until moved).")]
    assert PhysicalFile.objects.get(pk=cold.pk).hot_until is None
    assert reported(action(admin_client, "move_to_hot", [cold])) == [("warning", "1 file was already in HOT.")]
    assert reported(action(admin_client, "make_private", [cold])) == [("warning", "1 file was already private.")]
    assert reported(action(admin_client, "make_public", [cold])) == [("success", "1 file made public.")]


def test_set_hot_duration_is_not_offered_for_cold_files(s3strata_settings: Env, admin_client: Client) -> None:
    sync = get_file_manager().sync
    cold = [sync.upload(b"c", UploadOptions(filename=f"cold{i}.txt", tier="COLD")) for i in range(2)]
    response = action(admin_client, "set_hot_duration", cold)
    assert b'name="duration"' not in response.content
    assert reported(response) == [("warning", "None of the selected files is HOT: only HOT files have a hot duration.")]
    hot = sync.upload(b"h", UploadOptions(filename="hot.txt"))
    page = action(admin_client, "set_hot_duration", [*cold, hot]).content.decode()
    assert "Set when this HOT file leaves the HOT tier" in page and "hot.txt" in page and "cold0.txt" not in page
    assert "2 selected COLD files are left out: only HOT files have a hot duration." in page
    done = reported(action(admin_client, "set_hot_duration", [*cold, hot], apply="1", duration="60"))
    assert done == [
        ("success", "1 file got a new hot duration."),
        ("warning", "2 files were skipped: they are in COLD, and only HOT files have a hot duration."),
    ]


def test_delete_action_says_file_and_object(s3strata_settings: Env, admin_client: Client) -> None:
    sync = get_file_manager().sync
    one = sync.upload(b"1", UploadOptions(filename="one.txt"))
    assert reported(action(admin_client, "delete_with_objects", [one], apply="1")) == [
        ("success", "1 file deleted with its object.")
    ]
    two = [sync.upload(b"2", UploadOptions(filename=f"{i}.txt")) for i in range(2)]
    assert ("success", "2 files deleted with their objects.") in reported(
        action(admin_client, "delete_with_objects", two, apply="1")
    )


def test_add_form_says_a_cold_file_has_no_hot_duration(s3strata_settings: Env, admin_client: Client) -> None:
    page = admin_client.get(CHANGELIST + "add/").content.decode()
    assert "HOT files only: a COLD file has none." in page
    upload = SimpleUploadedFile("cold.bin", b"cold", "application/octet-stream")
    data = {"upload": upload, "tier": "COLD", "visibility": "PRIVATE", "hot_duration": "3600"}
    response = admin_client.post(CHANGELIST + "add/", data, follow=True)
    record = PhysicalFile.objects.get()
    assert (record.storage_tier, record.hot_until) == ("COLD", None)
    assert (
        "warning",
        "The hot duration was not used: the file went to COLD, and only HOT files have one.",
    ) in reported(response)


def test_change_page_moves_the_file_like_the_actions(s3strata_settings: Env, admin_client: Client) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"x", UploadOptions(filename="report.pdf", hot_duration=60))
    url = f"{CHANGELIST}{f.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert '<input type="text" name="filename" value="report.pdf"' in page and "<textarea" not in page
    assert "PRIVATE" in page  # the visibility, shown
    assert 'value="move_to_cold"' in page and 'value="make_public"' in page
    assert 'value="move_to_hot"' not in page and 'value="make_private"' not in page
    move = f"{CHANGELIST}{f.pk}/move/"
    assert admin_client.get(move).status_code == 405
    response = admin_client.post(move, {"action": "move_to_cold"}, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert reported(response) == [("success", "1 file moved to COLD.")]
    record = PhysicalFile.objects.get()
    assert record.storage_tier == "COLD" and env.keys("COLD") == [record.path] and env.keys("HOT") == []
    after = admin_client.get(url).content.decode()
    assert 'value="move_to_hot"' in after and 'value="move_to_cold"' not in after
    assert admin_client.post(move, {"action": "delete_with_objects"}).status_code == 403  # moves only


def test_change_page_moves_need_the_actions_permissions(s3strata_settings: Env, client: Client) -> None:
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_physicalfile", "change_physicalfile"]))
    client.force_login(user)
    f = get_file_manager().sync.upload(b"x")
    page = client.get(f"{CHANGELIST}{f.pk}/change/").content.decode()
    assert 'value="move_to_cold"' not in page and 'value="make_public"' not in page
    for name in ("move_to_cold", "make_public"):
        assert client.post(f"{CHANGELIST}{f.pk}/move/", {"action": name}).status_code == 403
    assert PhysicalFile.objects.get().path == f.path
    user.user_permissions.add(Permission.objects.get(codename="change_visibility_physicalfile"))
    client.force_login(User.objects.get(pk=user.pk))
    page = client.get(f"{CHANGELIST}{f.pk}/change/").content.decode()
    assert 'value="make_public"' in page and 'value="move_to_cold"' not in page


@shared_only  # the prefixes are set as one endpoint's settings
def test_orphans_page_speaks_the_configured_layout(s3strata_settings: Env, admin_client: Client, settings: Any) -> None:
    env = s3strata_settings
    layout = {"PUBLIC_HOT_PREFIX": "site/pub", "PRIVATE_HOT_PREFIX": "site/priv"}
    settings.S3STRATA = {**settings.S3STRATA, **layout, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 60}}
    page = admin_client.get(ORPHANS).content.decode()
    assert "older than 60 seconds" in page and "0.0 hours" not in page
    assert 'placeholder="site/pub/… or site/priv/…"' in page and "public/2026/" not in page
    assert 'class="button"' in page and 'value="adopt"' in page
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 86400}}
    assert "older than 24 hours" in admin_client.get(ORPHANS).content.decode()
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    env.put("HOT", "site/priv/stray.bin", b"s")
    confirm = admin_client.post(ORPHANS, {"tier": "HOT", "orphan_action": "delete", "key": ["site/priv/stray.bin"]})
    crumbs = confirm.content.decode().split('<div class="breadcrumbs">')[1].split("</div>")[0]
    for link in ('href="/admin/"', 'href="/admin/s3strata/"', f'href="{CHANGELIST}"', f'href="{ORPHANS}?tier=HOT"'):
        assert link in crumbs
    assert "Delete orphan objects" in crumbs


def test_hot_duration_and_delete_pages_have_full_breadcrumbs(s3strata_settings: Env, admin_client: Client) -> None:
    f = get_file_manager().sync.upload(b"x", UploadOptions(filename="a.txt"))
    for name in ("set_hot_duration", "delete_with_objects"):
        html = action(admin_client, name, [f]).content.decode()
        crumbs = html.split('<div class="breadcrumbs">')[1].split("</div>")[0]
        assert 'href="/admin/s3strata/"' in crumbs and f'href="{CHANGELIST}"' in crumbs, name


def test_the_open_link_is_the_download_view_and_survives_a_move(s3strata_settings: Env, admin_client: Client) -> None:
    f = get_file_manager().sync.upload(b"open me", UploadOptions(filename="open.txt"))
    html = admin_client.get(CHANGELIST).content.decode()
    link = f"/s3strata/files/{f.pk}/?disposition=inline"
    assert f'href="{link}"' in html and "X-Amz-Signature" not in html
    f.set_tier(StorageTier.COLD)
    response = admin_client.get(link)
    assert response.status_code == 302 and s3strata_settings.cold_bucket in response["Location"]
    import urllib.request

    with urllib.request.urlopen(response["Location"], timeout=10) as resp:
        assert resp.read() == b"open me" and resp.headers["Content-Disposition"].startswith("inline;")
