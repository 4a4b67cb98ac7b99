"""The deep archive in Django: archived rows, restores from the model, the command and the task, the way back to HOT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.template import Context, Template

from django_s3strata import get_file_manager, tasks
from django_s3strata.beat import beat_schedule
from django_s3strata.checks import check_minimum_archive_durations
from django_s3strata.core import ArchiveState, ObjectArchivedError, UploadOptions
from django_s3strata.models import PhysicalFile
from django_s3strata.operations import verify_files
from django_s3strata.signals import file_restored
from django_s3strata.storage import S3StrataStorage
from tests.conftest import Env, settings_dict
from tests.core.test_restore import archive_config, slow  # noqa: F401  (a fixture)
from tests.faults import FaultProxy, Faults

pytestmark = pytest.mark.django_db(transaction=True)

DATA = b"%PDF-1.7 invoice 2026-0042 " * 500


@pytest.fixture
def archive(env: Env, slow: tuple[Faults, FaultProxy, FaultProxy], settings: Any, request: Any) -> Iterator[Faults]:  # noqa: F811
    """settings.S3STRATA through the slow-restore proxies, COLD writing GLACIER; yields the proxies' faults."""
    faults, a, b = slow
    config = archive_config(env, a, b, request.node.callspec.params["env"])
    settings.S3STRATA = {
        **settings_dict(config),
        "ADVANCED": {"COLD_STORAGE_CLASS": "GLACIER", "MAX_ATTEMPTS": 1},
        "RESTORE_RETRIEVAL": "Expedited",
        "RESTORE_POLL_INTERVAL": 120,
    }
    yield faults


@pytest.fixture
def restored_signals() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    file_restored.connect(receive)
    yield seen
    file_restored.disconnect(receive)


def archived_file(name: str = "invoice.pdf") -> PhysicalFile:
    record: PhysicalFile = get_file_manager().sync.upload(DATA, UploadOptions(tier="HOT", filename=name))  # type: ignore[assignment]
    return record.archive()


def test_an_archived_file_comes_back_to_hot_once_its_restore_completes(
    archive: Faults, env: Env, restored_signals: list[dict[str, Any]]
) -> None:
    """Both layouts (the separate one streams the restored object across endpoints)."""
    faults = archive
    record = archived_file()
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=record.path)["StorageClass"] == "GLACIER"

    # The row knows, without a request: list pages and templates ask it.
    asked = len(faults.log)
    row = PhysicalFile.objects.get(pk=record.pk)
    assert row.restore_status.state is ArchiveState.ARCHIVED and not row.is_retrievable
    page = Template("[{{ f.url }}]{% if f.is_retrievable %}open{% else %}{{ f.restore_status }}{% endif %}")
    assert page.render(Context({"f": row})) == "[]archived (GLACIER)"
    assert len(faults.log) == asked
    with pytest.raises(ObjectArchivedError, match=r"PhysicalFile\.restore"):
        row.url
    with pytest.raises(ObjectArchivedError, match="InvalidObjectState"):
        row.open().read()
    with pytest.raises(ObjectArchivedError, match="until it is restored"):
        row.set_tier("HOT")

    # Asked to move back to HOT with restore=True: one restore, the move recorded; asking again changes nothing.
    row.set_tier("HOT", restore=True, hot_duration=3600)
    again = row.restore()
    assert not again.requested and "already under way" in again.message
    row = PhysicalFile.objects.get(pk=record.pk)
    pending_move = (row.storage_tier, row.archive_state, row.restore_move_to, row.restore_hot_duration)
    assert pending_move == ("COLD", "RESTORING", "HOT", 3600)
    assert faults.count("RestoreObject") == 1

    # The beat task, while the restore runs: one HEAD, nothing moves, no signal.
    assert beat_schedule()["s3strata-restores"]["schedule"] == 120.0
    heads = faults.count("HeadObject")
    pending = tasks.complete_restores.apply().get()
    assert pending["restoring"] == [row.pk] and pending["moved"] == []
    assert faults.count("HeadObject") == heads + 1
    assert PhysicalFile.objects.get(pk=record.pk).storage_tier == "COLD" and env.keys("HOT") == [] and restored_signals == []

    faults.restores.finish()  # type: ignore[union-attr]
    done = tasks.complete_restores.apply().get()
    assert done["moved"] == [row.pk] and done["restored"] == [row.pk] and done["failed"] == []
    row = PhysicalFile.objects.get(pk=record.pk)
    assert row.storage_tier == "HOT" and row.hot_until is not None
    assert (row.archive_state, row.restore_move_to, row.restore_expires) == (None, None, None)
    assert env.read("HOT", row.path) == DATA and env.keys("COLD") == []
    assert row.is_retrievable and row.url
    assert len(restored_signals) == 1 and restored_signals[0]["restored_until"] is not None
    assert restored_signals[0]["file"].pk == row.pk
    # Nothing pending any more: the next run asks S3 nothing.
    heads = faults.count("HeadObject")
    assert tasks.complete_restores.apply().get()["checked"] == 0 and faults.count("HeadObject") == heads


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_the_restore_command_in_json(archive: Faults) -> None:
    faults = archive
    record, readable = archived_file(), get_file_manager().sync.upload(b"x", UploadOptions(tier="HOT", filename="a.txt"))

    def run(*args: str) -> dict[str, Any]:
        out = StringIO()
        call_command("s3strata_restore", *args, "--json", stdout=out)
        result: dict[str, Any] = json.loads(out.getvalue())
        return result

    dry = run(str(record.pk), str(readable.pk), "--dry-run")
    assert dry["dry_run"] and dry["requested"] == [record.pk] and dry["not_archived"] == [readable.pk]
    assert faults.count("RestoreObject") == 0
    first = run("--all", "--days", "2")
    assert first["requested"] == [record.pk] and (first["days"], first["retrieval"]) == (2, "Expedited")
    assert run(str(record.pk))["in_progress"] == [record.pk]
    assert faults.count("RestoreObject") == 1
    assert PhysicalFile.objects.get(pk=record.pk).archive_state == "RESTORING"
    assert run("--complete")["restoring"] == [record.pk]

    for args, said in [
        (["abc"], "'abc' is not a file id"),
        ([str(record.pk), "--retrieval", "Fast"], "retrieval='Fast' is invalid"),
        ([str(record.pk), "--days", "0"], "days=0 is invalid"),
        ([], "No files given"),
    ]:
        with pytest.raises(CommandError, match=said) as caught:
            call_command("s3strata_restore", *args, stdout=StringIO())
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_storage_answers_for_its_archived_names(archive: Faults) -> None:
    record = archived_file("scan.png")
    storage, name = S3StrataStorage(), record.path.split("/", 1)[1]  # a storage names files by their suffix
    assert not storage.is_retrievable(name) and storage.restore_status(name).state is ArchiveState.ARCHIVED
    with pytest.raises(ObjectArchivedError):
        storage.url(name)

    class Attachment:  # what a FileField hands a template: its url asks the storage
        url = property(lambda self: storage.url(name))

    assert Template("[{{ f.url }}]").render(Context({"f": Attachment()})) == "[]"


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_verify_reports_rows_that_do_not_know_their_object_is_archived(s3strata_settings: Env) -> None:
    env = s3strata_settings
    record = get_file_manager().sync.upload(DATA, UploadOptions(tier="COLD", filename="old.pdf"))
    # Archived behind the library's back (a lifecycle rule): the row thinks it readable.
    source = {"Bucket": env.cold_bucket, "Key": record.path}
    env.cold_client.copy_object(Bucket=env.cold_bucket, Key=record.path, CopySource=source, StorageClass="GLACIER")
    found = verify_files()
    assert [m["id"] for m in found.archive_unknown] == [record.pk] and found.problems == 1
    assert found.archive_unknown[0]["object_state"] == "archived (GLACIER)"
    assert verify_files(repair=True).archive_recorded == 1
    row = PhysicalFile.objects.get(pk=record.pk)
    assert row.archive_state == "ARCHIVED" and not row.is_retrievable
    assert verify_files().problems == 0


def test_check_deploy_warns_before_the_minimum_archive_duration(settings: Any) -> None:
    base = {"ENDPOINT": "127.0.0.1", "ACCESS_KEY": "k", "SECRET_KEY": "s", "HOT_BUCKET": "hot-b", "COLD_BUCKET": "cold-b"}
    settings.S3STRATA = {**base, "ADVANCED": {"COLD_STORAGE_CLASS": "DEEP_ARCHIVE"}}
    assert check_minimum_archive_durations() == []
    settings.S3STRATA = {
        **base,
        "ADVANCED": {"COLD_STORAGE_CLASS": "DEEP_ARCHIVE"},
        "UNREFERENCED_SWEEP_INTERVAL": 3600,
        "UNREFERENCED_SWEEP_MODE": "delete",
        "UNREFERENCED_GRACE": 30 * 86400,
    }
    (warning,) = check_minimum_archive_durations()
    assert warning.id == "s3strata.W007" and "at least 180 days" in warning.msg and "early-deletion" in warning.msg
    settings.S3STRATA = {
        "HOT": {"ENDPOINT": "127.0.0.1", "BUCKET": "hot-b", "STORAGE_CLASS": "GLACIER"},
        "COLD": {"ENDPOINT": "127.0.0.1", "BUCKET": "cold-b"},
        "STORAGE_HOT_DURATION": 30 * 86400,
    }
    (warning,) = check_minimum_archive_durations()
    assert "HOT tier writes GLACIER" in warning.msg and "90 days" in warning.msg


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_visibility_move_of_a_restored_file_forgets_the_restore(archive: Faults, env: Env) -> None:
    """The move writes a new object in the tier's archive class: the row must not still say "restored"."""
    row = archived_file()
    row.restore(retrieval="Expedited")
    archive.restores.finish()  # type: ignore[union-attr]
    tasks.complete_restores.apply().get()
    row = PhysicalFile.objects.get(pk=row.pk)
    assert row.archive_state == "RESTORED" and row.is_retrievable
    row.set_visibility("PUBLIC")
    row = PhysicalFile.objects.get(pk=row.pk)
    assert row.path.startswith("public/")
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=row.path)["StorageClass"] == "GLACIER"
    assert (row.archive_state, row.restore_expires) == (None, None)
    assert not row.is_retrievable and row.restore_status.state is ArchiveState.ARCHIVED
