"""Unreferenced files: rows no field points at, found by one anti-join per referencing field, deleted by the FileManager."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_s3strata import get_file_manager
from django_s3strata.beat import beat_schedule
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from django_s3strata.operations_unreferenced import find_unreferenced, referencing_fields, sweep_unreferenced
from tests.conftest import Env
from tests.testapp.models import Contract, Document, Profile, Report

pytestmark = pytest.mark.django_db


def age(*files: PhysicalFile, seconds: int = 7200) -> None:
    PhysicalFile.objects.filter(pk__in=[f.pk for f in files]).update(created_at=timezone.now() - timedelta(seconds=seconds))


def upload(data: bytes, name: str) -> PhysicalFile:
    record: PhysicalFile = get_file_manager().sync.upload(data, UploadOptions(filename=name))
    return record


def test_the_referencing_fields_are_found_in_the_app_registry() -> None:
    found = {(ref.label, ref.by_name) for ref in referencing_fields()}
    assert {
        ("testapp.Document.attachment", False),
        ("testapp.Contract.scan", False),
        ("testapp.Clip.video", False),
        ("testapp.Profile.photo", False),
        ("testapp.Report.pdf", True),
        ("testapp.Report.appendix", True),  # the default storage is S3StrataStorage
        ("testapp.Profile.cv", True),
    } <= found


def test_report_then_delete_only_old_unreferenced_files(s3strata_settings: Env) -> None:
    env = s3strata_settings
    by_fk = upload(b"fk", "fk.txt")
    Document.objects.create(title="d", attachment=by_fk)
    report = Report.objects.create(name="r", pdf=ContentFile(b"pdf", name="r.pdf"))
    by_name = PhysicalFile.objects.get(path__endswith=report.pdf.name)
    loose, young = upload(b"loose", "loose.txt"), upload(b"young", "young.txt")
    outside = PhysicalFile.objects.create(filename="other.txt", path="other-app/other.txt")
    age(by_fk, by_name, loose, outside)
    found = [f.pk for batch in find_unreferenced(grace=3600) for f in batch]
    assert found == [loose.pk]  # not the young one, not the one outside the prefixes
    summary = sweep_unreferenced("delete", grace=3600, dry_run=True)
    assert (summary.found, summary.deleted, summary.dry_run) == (1, 0, True)
    assert PhysicalFile.objects.filter(pk=loose.pk).exists() and loose.path in env.keys("HOT")
    summary = sweep_unreferenced("delete", grace=3600)
    assert (summary.found, summary.deleted, summary.failed, summary.bytes) == (1, 1, 0, 5)
    assert not PhysicalFile.objects.filter(pk=loose.pk).exists()
    assert loose.path not in env.keys("HOT")  # the object went too, through the FileManager
    assert {by_fk.path, by_name.path, young.path} <= set(env.keys("HOT"))


def test_the_command_reports_deletes_and_refuses_bad_input(s3strata_settings: Env) -> None:
    env = s3strata_settings
    loose = upload(b"loose bytes", "loose.txt")
    kept = upload(b"kept", "kept.txt")
    Contract.objects.create(customer="acme", scan=kept)
    age(loose, kept)
    out = StringIO()
    call_command("s3strata_unreferenced", "--grace", "3600", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["mode"], report["found"], report["deleted"]) == ("report", 1, 0)
    assert [f["id"] for f in report["files"]] == [loose.pk]
    out = StringIO()
    call_command("s3strata_unreferenced", "--delete", "--dry-run", "--grace", "3600", stdout=out)
    assert "would delete" in out.getvalue() and "(dry run)" in out.getvalue()
    assert PhysicalFile.objects.count() == 2
    out = StringIO()
    call_command("s3strata_unreferenced", "--delete", "--grace", "3600", stdout=out)
    assert "deleted 1," in out.getvalue()
    assert list(PhysicalFile.objects.values_list("pk", flat=True)) == [kept.pk] and env.keys("HOT") == [kept.path]
    for bad in (["--grace", "-1"], ["--grace", "soon"], ["--batch-size", "0"]):
        with pytest.raises(CommandError) as info:
            call_command("s3strata_unreferenced", *bad)
        assert "\n" not in str(info.value)


def test_one_query_per_batch(s3strata_settings: Env, django_assert_num_queries: Any) -> None:
    now = timezone.now() - timedelta(days=2)
    PhysicalFile.objects.bulk_create(
        PhysicalFile(filename=f"{i}.bin", path=f"private/{i:05d}-f.bin", created_at=now, updated_at=now) for i in range(25)
    )
    with django_assert_num_queries(3):  # 10 + 10 + 5 rows: the last batch is short, so no fourth query
        batches = list(find_unreferenced(grace=3600, batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 5]


def test_fast_on_many_rows(s3strata_settings: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """20,000 rows, half referenced by a foreign key and a quarter by a FileField's name: one pass, in batches."""
    n = 20_000
    past = timezone.now() - timedelta(days=2)
    PhysicalFile.objects.bulk_create(
        (
            PhysicalFile(filename=f"{i}.bin", path=f"private/many/{i:06d}-f.bin", created_at=past, updated_at=past)
            for i in range(n)
        ),
        batch_size=5000,
    )
    ids = list(PhysicalFile.objects.order_by("pk").values_list("pk", flat=True))
    Document.objects.bulk_create(
        (Document(title=str(i), attachment_id=pk) for i, pk in enumerate(ids[: n // 2])), batch_size=5000
    )
    Report.objects.bulk_create(
        (Report(name=str(i), pdf=f"many/{i:06d}-f.bin") for i in range(n // 2, 3 * n // 4)), batch_size=5000
    )
    started = time.perf_counter()
    found = sum(len(batch) for batch in find_unreferenced(grace=3600))
    elapsed = time.perf_counter() - started
    assert found == n // 4
    with capsys.disabled():
        print(f"\n[s3strata_unreferenced] {n} rows, {found} unreferenced found in {elapsed:.3f} s")
    assert elapsed < 30


def test_the_task_and_its_beat_entry(s3strata_settings: Env, settings: Any) -> None:
    from django_s3strata.tasks import sweep_unreferenced as task

    assert "s3strata-unreferenced" not in beat_schedule(settings.S3STRATA)  # no interval, no entry
    entry = beat_schedule({**settings.S3STRATA, "UNREFERENCED_SWEEP_INTERVAL": 3600, "UNREFERENCED_SWEEP_MODE": "delete"})
    assert entry["s3strata-unreferenced"]["task"] == "django_s3strata.tasks.sweep_unreferenced"
    assert entry["s3strata-unreferenced"]["kwargs"] == {"mode": "delete"}
    loose = upload(b"x", "x.txt")
    age(loose)
    result = task.apply(kwargs={"mode": "delete", "grace": 3600}).get()
    assert (result["found"], result["deleted"]) == (1, 1) and not PhysicalFile.objects.exists()


def test_profile_cv_name_keeps_its_file(s3strata_settings: Env) -> None:
    profile = Profile.objects.create(name="p", cv=ContentFile(b"cv", name="cv.pdf"))
    age(PhysicalFile.objects.get())
    assert list(find_unreferenced(grace=0)) == [] and profile.cv.name
