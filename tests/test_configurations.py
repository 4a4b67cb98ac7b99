"""Several bucket pairs in one project: ``S3STRATA = {"default": {...}, "exports": {...}}`` on real S3 servers."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from django_s3strata import conf, operations
from django_s3strata.beat import beat_schedule
from django_s3strata.checks import check_field_configurations, check_settings
from django_s3strata.core import StorageTier
from django_s3strata.core.exceptions import ConfigurationError, InvalidOptionError
from django_s3strata.models import PhysicalFile
from django_s3strata.services import get_file_manager
from tests.conftest import Env, make_env, settings_dict
from tests.s3server import MotoS3Server
from tests.testapp.models import Document, Export

pytestmark = pytest.mark.django_db(transaction=True)

ORPHANS = "/admin/s3strata/physicalfile/orphans/"


@pytest.fixture
def two(settings: Any, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> dict[str, Env]:
    """ "default" on the first S3 server, "exports" on the second, each with fresh buckets."""
    envs = {"default": make_env("shared", moto_server, moto_server), "exports": make_env("shared", moto_server_b, moto_server_b)}
    settings.S3STRATA = {name: settings_dict(env.config) for name, env in envs.items()}
    return envs


def _out(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_flat_dict_is_the_default_configuration(settings: Any, moto_server: MotoS3Server) -> None:
    env = make_env("shared", moto_server, moto_server)
    settings.S3STRATA = settings_dict(env.config)
    assert conf.config_names() == ["default"] and conf.get_settings().name == "default"
    assert get_file_manager("default") is get_file_manager()
    with pytest.raises(ConfigurationError, match=r"no configuration named 'exports'; it has: default"):
        get_file_manager("exports")


def test_uploads_land_in_their_own_buckets_and_rows_record_the_configuration(two: dict[str, Env]) -> None:
    default, exports = two["default"], two["exports"]
    doc = Document.objects.create(title="d", attachment=ContentFile(b"default bytes", name="d.txt"))
    export = Export.objects.create(
        name="e", archive=ContentFile(b"export bytes", name="e.csv"), sheet=ContentFile(b"sheet bytes", name="s.csv")
    )
    export = Export.objects.select_related("archive").get(pk=export.pk)
    doc = Document.objects.select_related("attachment").get(pk=doc.pk)
    assert doc.attachment.config is None and doc.attachment.config_name == "default"
    assert export.archive.config == "exports"
    sheet_row = Export.sheet.field.storage.record(export.sheet.name)
    assert sheet_row is not None and sheet_row.config == "exports"
    assert exports.read("HOT", export.archive.path) == b"export bytes"
    assert exports.read("HOT", sheet_row.path) == b"sheet bytes"
    assert default.read("HOT", doc.attachment.path) == b"default bytes"
    assert export.archive.path not in default.keys("HOT") and doc.attachment.path not in exports.keys("HOT")
    # Every operation on a row uses its own configuration: the URL names the second server, reads come from there.
    assert f":{exports.config.port}/" in export.archive.url and f":{default.config.port}/" in doc.attachment.url
    assert export.archive.open().read() == b"export bytes" and export.sheet.open().read() == b"sheet bytes"
    # The default storage does not see the exports' names (a name is unique within its configuration only).
    assert Document.attachment.field.config == "default"
    from django_s3strata.storage import S3StrataStorage

    assert S3StrataStorage().record(export.sheet.name) is None
    export.archive.set_tier("COLD")
    assert exports.read("COLD", export.archive.path) == b"export bytes" and default.keys("COLD") == []
    export.archive.set_visibility("PUBLIC")
    assert exports.read("COLD", export.archive.path) == b"export bytes" and export.archive.path.startswith("public/")
    export.archive.delete()
    assert exports.keys("COLD") == []


def test_archival_verify_and_orphans_run_per_configuration_or_for_all(two: dict[str, Env]) -> None:
    default, exports = two["default"], two["exports"]
    a = get_file_manager("default").sync.upload(b"a", None)
    b = get_file_manager("exports").sync.upload(b"b", None)
    PhysicalFile.objects.filter(pk__in=[a.pk, b.pk]).update(hot_until=timezone.now() - timedelta(seconds=1))
    assert operations.archive_expired(dry_run=True, config="exports").would_move == [b.pk]
    summary = operations.archive_expired(config="exports")
    assert summary.moved == 1
    assert PhysicalFile.objects.get(pk=b.pk).storage_tier == "COLD" and PhysicalFile.objects.get(pk=a.pk).storage_tier == "HOT"
    b = PhysicalFile.objects.get(pk=b.pk)
    assert exports.read("COLD", b.path) == b"b" and exports.keys("HOT") == []
    # The command runs every configuration by default: the default's file moves now.
    result = json.loads(_out("s3strata_archive", "--json"))
    assert result["default"]["moved"] == 1 and result["exports"]["moved"] == 0
    a = PhysicalFile.objects.get(pk=a.pk)
    assert default.read("COLD", a.path) == b"a"

    # Verify, per configuration: an object removed behind the library's back is missing in its own pair only.
    exports.client("COLD").delete_object(Bucket=exports.cold_bucket, Key=b.path)
    with pytest.raises(CommandError):
        call_command("s3strata_verify", "--config", "exports", "--json", stdout=(out := StringIO()), stderr=StringIO())
    only = json.loads(out.getvalue())
    assert only["checked"] == 1 and [m["id"] for m in only["missing"]] == [b.pk]
    assert operations.verify_files(config="default").missing == []

    # Orphans: a stray object in each pair; --config lists one pair's, no --config both.
    default.put("HOT", "private/stray-default.bin", b"x")
    exports.put("HOT", "private/stray-exports.bin", b"y")
    one = json.loads(_out("s3strata_orphans", "list", "--config", "exports", "--older-than", "0", "--json"))
    assert one["found"] == 1
    both = json.loads(_out("s3strata_orphans", "list", "--older-than", "0", "--json"))
    assert both["default"]["found"] == 1 and both["exports"]["found"] == 1
    found = operations.sweep_orphans("delete", older_than=0, config="exports")
    assert found.deleted == 1 and exports.keys("HOT") == [] and default.keys("HOT") == ["private/stray-default.bin"]


def test_an_unknown_configuration_is_one_command_error_line(two: dict[str, Env]) -> None:
    for command in (["s3strata_archive"], ["s3strata_orphans", "list"], ["s3strata_verify"], ["s3strata_unreferenced"]):
        with pytest.raises(CommandError) as caught:
            call_command(*command, "--config", "nope", stdout=StringIO(), stderr=StringIO())
        assert str(caught.value) == "Unknown configuration 'nope': settings.S3STRATA has default, exports."


def test_unreferenced_sweep_and_restores_per_configuration(two: dict[str, Env]) -> None:
    from django_s3strata.operations_restore import complete_restores
    from django_s3strata.operations_unreferenced import sweep_unreferenced

    a = get_file_manager("default").sync.upload(b"a", None)
    b = get_file_manager("exports").sync.upload(b"b", None)
    assert [f["id"] for f in sweep_unreferenced(grace=0, config="exports").files] == [b.pk]
    assert [f["id"] for f in sweep_unreferenced(grace=0).files] == [a.pk]
    assert sweep_unreferenced("delete", grace=0, config="exports").deleted == 1
    assert two["exports"].keys("HOT") == [] and PhysicalFile.objects.filter(pk=a.pk).exists()
    assert complete_restores(config="exports").checked == 0


def test_tasks_take_a_configuration_and_beat_has_entries_per_configuration(two: dict[str, Env], settings: Any) -> None:
    from django_s3strata import tasks

    b = get_file_manager("exports").sync.upload(b"b", None)
    PhysicalFile.objects.filter(pk=b.pk).update(hot_until=timezone.now() - timedelta(seconds=1))
    assert tasks.archive_expired_hot_files.apply(kwargs={"config": "default"}).get()["moved"] == 0
    assert tasks.archive_expired_hot_files.apply(kwargs={"config": "exports"}).get()["moved"] == 1
    exports = {**settings.S3STRATA["exports"], "ARCHIVE_INTERVAL": 60, "ORPHAN_SWEEP_INTERVAL": None}
    raw = {**settings.S3STRATA, "exports": exports}
    schedule = beat_schedule(raw)
    assert schedule["s3strata-archive"]["kwargs"] == {} and schedule["s3strata-archive"]["schedule"] == 300.0
    assert schedule["s3strata-archive-exports"] == {
        "task": "django_s3strata.tasks.archive_expired_hot_files",
        "schedule": 60.0,
        "kwargs": {"config": "exports"},
        "options": {"expires": 60.0},
    }
    assert "s3strata-orphans" in schedule and "s3strata-orphans-exports" not in schedule


def test_the_admin_orphan_page_chooses_a_configuration(two: dict[str, Env], admin_client: Client, settings: Any) -> None:
    default, exports = two["default"], two["exports"]
    settings.S3STRATA = {name: {**block, "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}} for name, block in settings.S3STRATA.items()}
    default.put("HOT", "private/stray-default.bin", b"x")
    exports.put("HOT", "private/stray-exports.bin", b"y")
    page = admin_client.get(ORPHANS + "?tier=HOT&config=exports")
    assert [o.key for o in page.context["orphans"]] == ["private/stray-exports.bin"]
    html = page.content.decode()
    assert '<select name="config" id="orphan-config">' in html and '<option value="exports" selected>' in html
    assert exports.hot_bucket in html
    assert [o.key for o in admin_client.get(ORPHANS + "?tier=HOT").context["orphans"]] == ["private/stray-default.bin"]
    confirm = admin_client.post(
        ORPHANS, {"tier": "HOT", "config": "exports", "orphan_action": "delete", "key": ["private/stray-exports.bin"]}
    )
    assert 'name="config" value="exports"' in confirm.content.decode()
    done = admin_client.post(
        ORPHANS,
        {"tier": "HOT", "config": "exports", "orphan_action": "delete", "key": ["private/stray-exports.bin"], "confirm": "1"},
    )
    assert done.status_code == 302 and done["Location"].endswith("?tier=HOT&config=exports")
    assert exports.keys("HOT") == [] and default.keys("HOT") == ["private/stray-default.bin"]


def test_a_page_of_mixed_configurations_costs_three_queries_and_no_s3_request(
    two: dict[str, Env], django_assert_max_num_queries: Any
) -> None:
    from django_s3strata.storage import clear_cache

    for i in range(50):
        Document.objects.create(title=f"d{i}", attachment=get_file_manager("default").sync.upload(b"d", None))
        Export.objects.create(
            name=f"e{i}", archive=get_file_manager("exports").sync.upload(b"e", None), sheet=ContentFile(b"s", name=f"{i}.csv")
        )
    clear_cache()
    seen: list[str] = []
    for name in ("default", "exports"):
        store = get_file_manager(name).objectstore
        for tier in StorageTier:
            store.client(tier).meta.events.register("before-send.s3", lambda request, **kw: seen.append(request.url))
    page = Template(
        "{% for d in docs %}<a href='{{ d.attachment.url }}'>d</a>{% endfor %}"
        "{% for e in exports %}<a href='{{ e.archive.url }}'>e</a><a href='{{ e.sheet.url }}'>s</a>{% endfor %}"
    )
    with django_assert_max_num_queries(3):  # the documents with their files, the exports with theirs, the sheets' files
        html = page.render(
            Context(
                {
                    "docs": Document.objects.select_related("attachment"),
                    "exports": Export.objects.select_related("archive"),
                }
            )
        )
    assert html.count(f"<a href='http://127.0.0.1:{two['default'].config.port}/") == 50
    assert html.count(f"<a href='http://127.0.0.1:{two['exports'].config.port}/") == 100
    assert seen == []


def test_checks_name_the_nested_keys(settings: Any, moto_server: MotoS3Server) -> None:
    good = settings_dict(make_env("shared", moto_server, moto_server).config)
    settings.S3STRATA = {"default": good, "exports": {"ENDPOINT": "127.0.0.1", "PORT": 1, "USE_SSL": False}}
    texts = [m.msg for m in check_settings()]
    assert any("S3STRATA['exports']['HOT_BUCKET']" in t for t in texts), texts
    assert not any("S3STRATA['default']" in t for t in texts)

    settings.S3STRATA = {"default": good, "exports": {**good, "HOT": {"BUCKET": "x"}}}
    [message] = check_settings()
    assert message.id == "s3strata.E001" and "settings.S3STRATA['exports']['HOT'] lacks ENDPOINT" in message.msg

    settings.S3STRATA = {"default": good, "exports": good}
    assert {m.id for m in check_settings()} == {"s3strata.E012"}

    settings.S3STRATA = {"default": good, "exports": {**good, "DOWNLOAD_URL_EXPIRES": 5}}
    [message] = check_settings()
    assert "S3STRATA['exports'] sets DOWNLOAD_URL_EXPIRES" in message.msg

    settings.S3STRATA = {"default": good, "HOT_BUCKET": "x"}
    [message] = check_settings()
    assert "flat key(s) HOT_BUCKET" in message.msg

    settings.S3STRATA = {"default": good}
    ids = {(m.obj.name, m.id) for m in check_field_configurations()}
    assert ids == {("archive", "s3strata.W008"), ("sheet", "s3strata.W008")}


def test_global_options_come_from_the_default_configuration(two: dict[str, Env], settings: Any) -> None:
    settings.S3STRATA = {
        "default": {**settings.S3STRATA["default"], "DOWNLOAD_URL_EXPIRES": 30},
        "exports": {**settings.S3STRATA["exports"], "ARCHIVE_BATCH_SIZE": 7},
    }
    assert conf.get_settings("exports").options["DOWNLOAD_URL_EXPIRES"] == 30
    assert conf.get_settings("exports").options["ARCHIVE_BATCH_SIZE"] == 7
    assert conf.get_settings("default").options["ARCHIVE_BATCH_SIZE"] == 200


def test_direct_uploads_are_for_the_default_configuration() -> None:
    from django_s3strata.fields import PhysicalFileField

    with pytest.raises(InvalidOptionError, match="direct uploads go to the 'default' configuration only"):
        PhysicalFileField(direct_upload=True, config="exports")
