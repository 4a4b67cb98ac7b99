"""PhysicalFileField in code: a Django File given to the constructor or assigned is stored on save, with the field's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile, File
from django.core.files.uploadedfile import SimpleUploadedFile

from django_s3strata import get_file_manager
from django_s3strata.models import PhysicalFile
from tests.conftest import Env
from tests.testapp.models import Contract, Document

pytestmark = pytest.mark.django_db


def test_a_file_given_to_the_constructor_is_stored_when_the_row_is_saved(s3strata_settings: Env) -> None:
    env = s3strata_settings
    upload = SimpleUploadedFile("q3.pdf", b"%PDF q3", "application/pdf")
    doc = Document(title="Q3", attachment=upload)
    assert doc.attachment is upload and doc.attachment_id is None  # held, as FileField holds it
    assert PhysicalFile.objects.count() == 0 and env.keys("HOT") == []
    doc.full_clean()
    doc.save()
    record = PhysicalFile.objects.get()
    assert doc.attachment == record and doc.attachment_id == record.pk
    assert record.path.startswith("private/docs/") and record.path.endswith("-q3.pdf")  # upload_to="docs/%Y"
    assert (record.filename, record.size, record.content_type) == ("q3.pdf", 7, "application/pdf")
    assert record.hot_until is not None  # the field's hot_duration
    assert env.read("HOT", record.path) == b"%PDF q3"
    assert Document.objects.get().attachment == record
    doc.save()  # saving again stores nothing new
    assert PhysicalFile.objects.count() == 1


def test_objects_create_with_a_content_file(s3strata_settings: Env) -> None:
    doc = Document.objects.create(title="notes", attachment=ContentFile(b"hello", name="notes.txt"))
    assert isinstance(doc.attachment, PhysicalFile) and doc.attachment.filename == "notes.txt"
    assert s3strata_settings.read("HOT", doc.attachment.path) == b"hello"


def test_an_assigned_file_gets_the_fields_tier_and_upload_to(s3strata_settings: Env, tmp_path: Path) -> None:
    env = s3strata_settings
    contract = Contract(customer="acme")
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG scan")
    with path.open("rb") as fh:
        contract.scan = File(fh)  # its name is the full path: only the base name is kept
        contract.full_clean()  # blank=False: a held file counts
        contract.save()
    scan = contract.scan
    assert isinstance(scan, PhysicalFile) and scan.storage_tier == "COLD" and scan.filename == "scan.png"
    assert scan.path.startswith("private/contracts/acme/")  # the callable upload_to
    assert env.keys("COLD") == [scan.path] and env.read("COLD", scan.path) == b"\x89PNG scan"
    # Replacing the file of a saved row stores the new one and links it.
    contract.scan = ContentFile(b"v2", name="scan-v2.png")
    contract.save()
    contract.refresh_from_db()
    assert contract.scan.filename == "scan-v2.png" and PhysicalFile.objects.count() == 2


def test_a_physical_file_none_or_an_id_keeps_working(s3strata_settings: Env) -> None:
    env = s3strata_settings
    record = get_file_manager().sync.upload(b"x")
    doc = Document.objects.create(title="a", attachment=record)
    assert Document.objects.get().attachment == record
    doc.attachment = None
    doc.save()
    assert Document.objects.get().attachment is None
    doc = Document.objects.create(title="b", attachment_id=record.pk)
    assert Document.objects.get(pk=doc.pk).attachment == record
    # A held file gives way to what is set after it: nothing is stored.
    for replace in ({"attachment": None}, {"attachment": record}, {"attachment_id": record.pk}):
        doc.attachment = ContentFile(b"never", name="never.txt")
        for name, value in replace.items():
            setattr(doc, name, value)
        doc.save()
        assert PhysicalFile.objects.count() == 1 and env.keys("HOT") == [record.path]
    assert Document.objects.get(pk=doc.pk).attachment == record
    with pytest.raises(ValueError, match="must be a"):
        doc.attachment = "not a file"


# -- delete_on_replace -------------------------------------------------------------------------


def test_a_replaced_file_is_deleted_after_the_commit(s3strata_settings: Env, django_capture_on_commit_callbacks: Any) -> None:
    from tests.testapp.models import Profile

    env = s3strata_settings
    profile = Profile.objects.create(name="ada", photo=ContentFile(b"old photo", name="old.png"))
    old = profile.photo
    profile = Profile.objects.get()  # loaded: it remembers the file it had
    with django_capture_on_commit_callbacks() as callbacks:
        profile.photo = ContentFile(b"new photo", name="new.png")
        profile.save()
        assert PhysicalFile.objects.filter(pk=old.pk).exists()  # nothing before the commit
    for callback in callbacks:
        callback()
    new = Profile.objects.get().photo
    assert list(PhysicalFile.objects.values_list("pk", flat=True)) == [new.pk]
    assert env.keys("HOT") == [new.path] and env.read("HOT", new.path) == b"new photo"
    with django_capture_on_commit_callbacks(execute=True):
        profile.photo = None  # cleared (the form's clear box) counts as replaced by nothing
        profile.save()
    assert not PhysicalFile.objects.exists() and env.keys("HOT") == []


def test_a_rolled_back_replace_keeps_the_old_file(s3strata_settings: Env, django_capture_on_commit_callbacks: Any) -> None:
    from django.db import transaction

    from tests.testapp.models import Profile

    env = s3strata_settings
    profile = Profile.objects.create(name="ada", photo=ContentFile(b"old", name="old.png"))
    old = profile.photo
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        profile.photo = get_file_manager().sync.upload(b"other", None)
        profile.save()
        raise RuntimeError("the view failed")
    assert callbacks == []
    assert Profile.objects.get().photo_id == old.pk and env.read("HOT", old.path) == b"old"


def test_a_replaced_file_another_row_references_is_kept(s3strata_settings: Env, django_capture_on_commit_callbacks: Any) -> None:
    from tests.testapp.models import Profile

    env = s3strata_settings
    shared = get_file_manager().sync.upload(b"shared", None)
    profile = Profile.objects.create(name="ada", photo=shared)
    Document.objects.create(title="also", attachment=shared)
    with django_capture_on_commit_callbacks(execute=True):
        profile.photo = ContentFile(b"mine", name="mine.png")
        profile.save()
        profile.name = "ada l."
        profile.save(update_fields=["name"])  # the photo column is not written: nothing to delete
    assert PhysicalFile.objects.filter(pk=shared.pk).exists() and env.read("HOT", shared.path) == b"shared"
    contract = Contract.objects.create(customer="acme", scan=shared)  # delete_with_owner, but shared too
    with django_capture_on_commit_callbacks(execute=True):
        contract.delete()
    assert PhysicalFile.objects.filter(pk=shared.pk).exists()
