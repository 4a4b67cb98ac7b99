"""PhysicalFileField in code: a Django File given to the constructor or assigned is stored on save, with the field's options."""

from __future__ import annotations

from pathlib import Path

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
