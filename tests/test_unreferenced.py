"""Unreferenced files: rows no field points at, found by one anti-join per referencing field, deleted by the FileManager."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.utils import timezone

from django_s3strata import get_file_manager
from django_s3strata.beat import beat_schedule
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from django_s3strata.operations_unreferenced import (
    delete_if_unreferenced,
    find_unreferenced,
    referencing_fields,
    sweep_unreferenced,
)
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
    # Per batch: one query for the rows (foreign keys anti-joined in it), and one per FileField on our
    # storage, whose names are compared in Python; 10 + 10 + 5 rows: the last batch is short, no fourth.
    by_name = sum(1 for ref in referencing_fields() if ref.by_name)
    assert by_name >= 2  # the test project's FileFields on S3StrataStorage
    with django_assert_num_queries(3 * (1 + by_name)):
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


# -- deleting safely (issue #22 review) ------------------------------------------------------------


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_reference_made_while_the_sweep_deletes_keeps_its_file(s3strata_settings: Env) -> None:
    """Two old unreferenced files; while the sweep deletes the first, a row starts pointing at the second."""
    env = s3strata_settings
    a, b = upload(b"a", "a.txt"), upload(b"bb", "b.txt")
    age(a, b)
    late: list[Document] = []

    def meanwhile(record: PhysicalFile, action: str) -> None:
        if record.pk == a.pk:
            late.append(Document.objects.create(title="late", attachment_id=b.pk))

    summary = sweep_unreferenced("delete", grace=3600, on_file=meanwhile)
    assert (summary.found, summary.deleted, summary.kept, summary.failed) == (1, 1, 1, 0)
    assert Document.objects.get(pk=late[0].pk).attachment_id == b.pk  # not set to NULL
    assert PhysicalFile.objects.filter(pk=b.pk).exists() and b.path in env.keys("HOT")
    assert not PhysicalFile.objects.filter(pk=a.pk).exists() and a.path not in env.keys("HOT")


def _race_between_check_and_delete(
    monkeypatch: pytest.MonkeyPatch, file_id: int
) -> tuple[list[BaseException], list[threading.Thread]]:
    """Make another connection point a Document at ``file_id`` right after the delete's reference check.

    The check's own result stands (nothing referenced the file yet). The other connection's insert
    gets a second to commit: unlocked, it does; with the row locked, its foreign key waits for the
    delete's commit and then fails. Returns (its errors, its thread) to look at once joined.
    """
    from django.db import connections

    from django_s3strata import operations_unreferenced

    real = operations_unreferenced.referenced
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def insert() -> None:
        try:
            Document.objects.create(title="late", attachment_id=file_id)
        except IntegrityError as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def check_then_race(*args: Any, **kwargs: Any) -> set[int]:
        found = real(*args, **kwargs)
        if not threads:
            threads.append(threading.Thread(target=insert))
            threads[0].start()
            threads[0].join(1.0)
        return found

    monkeypatch.setattr(operations_unreferenced, "referenced", check_then_race)
    return errors, threads


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_reference_made_between_the_check_and_the_delete_fails_its_foreign_key(
    s3strata_settings: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = s3strata_settings
    b = upload(b"b", "b.txt")
    age(b)
    errors, threads = _race_between_check_and_delete(monkeypatch, b.pk)
    summary = sweep_unreferenced("delete", grace=3600)
    threads[0].join(10)
    assert summary.deleted == 1 and not PhysicalFile.objects.filter(pk=b.pk).exists() and b.path not in env.keys("HOT")
    # The late reference failed on its foreign key; it was not kept with a NULL file.
    assert len(errors) == 1 and not Document.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_delete_on_replace_never_nulls_a_reference_made_meanwhile(
    s3strata_settings: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = s3strata_settings
    profile = Profile.objects.create(name="p", photo=ContentFile(b"old", name="old.png"))
    old = PhysicalFile.objects.get(pk=profile.photo_id)
    errors, threads = _race_between_check_and_delete(monkeypatch, old.pk)
    profile.photo = ContentFile(b"new", name="new.png")
    profile.save()  # autocommit: the replaced photo's delete runs now
    threads[0].join(10)
    assert not PhysicalFile.objects.filter(pk=old.pk).exists() and old.path not in env.keys("HOT")
    assert len(errors) == 1 and not Document.objects.exists()


@pytest.mark.parametrize("env", ["shared"], indirect=True)
@pytest.mark.parametrize(
    ("name", "rewrite"),
    [
        ("café.pdf", lambda n: unicodedata.normalize("NFD", n)),  # macOS's decomposed form
        ("Kelvin.pdf", lambda n: n.replace("K", "\u212a")),  # KELVIN SIGN: NFC makes it "K"
    ],
)
def test_a_filefield_name_in_another_unicode_form_keeps_its_file(
    s3strata_settings: Env, name: str, rewrite: Callable[[str], str]
) -> None:
    env = s3strata_settings
    report = Report.objects.create(name="r", pdf=ContentFile(b"%PDF", name=name))
    record = PhysicalFile.objects.get()
    other = rewrite(report.pdf.name)
    assert other != report.pdf.name
    Report.objects.filter(pk=report.pk).update(pdf=other)
    loose = upload(b"loose", name)  # the same file name, another key: unreferenced
    age(record, loose)
    assert Report.objects.get().pdf.storage.exists(other)  # the storage finds the file by the rewritten name
    assert [f.pk for batch in find_unreferenced(grace=3600) for f in batch] == [loose.pk]
    summary = sweep_unreferenced("delete", grace=3600)
    assert (summary.deleted, summary.kept) == (1, 0)
    assert PhysicalFile.objects.filter(pk=record.pk).exists() and record.path in env.keys("HOT")
    assert delete_if_unreferenced(record.pk) == "kept"  # the per-file check (delete_on_replace's) agrees
    assert PhysicalFile.objects.filter(pk=record.pk).exists()
